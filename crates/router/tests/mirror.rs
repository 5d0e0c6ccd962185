//! The builtin router's mirror on its own: its queue's bound, its counters and when they reset,
//! and the copies themselves. What both routers must do with shadows (the share copied, shadows
//! that hang, refuse or fail) is in zdd's router contract.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use zdd_router::{
    Backend, BuiltinOptions, BuiltinRouter, Endpoint, Matcher, Mirror, MirrorOptions, MirrorStats,
    Route, RouteTable, Rule,
};
use zdd_test_support::http::{get, send};
use zdd_test_support::poll::eventually;
use zdd_test_support::upstream::{TestServer, refused_addr};

fn endpoint(pod: &str, version: &str, addr: SocketAddr) -> Endpoint {
    Endpoint {
        pod: pod.into(),
        version: version.into(),
        addr,
        node: None,
    }
}

/// Every request to `main` (v1); `percent` of them copied to `shadow` (v2).
fn mirrored(main: SocketAddr, shadow: &[SocketAddr], percent: u32) -> RouteTable {
    RouteTable {
        main: Route {
            rules: vec![Rule {
                matcher: Matcher::Always,
                backends: vec![Backend {
                    name: "v1".into(),
                    weight: 1,
                    endpoints: vec![endpoint("v1-1", "v1", main)],
                }],
                mirror: Some(Mirror {
                    name: "v2".into(),
                    percent,
                    endpoints: shadow
                        .iter()
                        .enumerate()
                        .map(|(i, addr)| endpoint(&format!("v2-{i}"), "v2", *addr))
                        .collect(),
                }),
            }],
        },
        preview: Route::default(),
    }
}

async fn router(mirror: MirrorOptions) -> BuiltinRouter {
    let options = BuiltinOptions {
        mirror,
        ..BuiltinOptions::default()
    };
    BuiltinRouter::start_with_options("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap()
}

fn url(router: &BuiltinRouter) -> String {
    format!("http://{}", router.addrs().main)
}

fn stats(router: &BuiltinRouter) -> MirrorStats {
    let mut all = router.mirror_stats();
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

/// Waits until every copy sent so far has ended (answered or failed).
async fn settled(router: &BuiltinRouter, sent: u64) -> MirrorStats {
    eventually(
        &format!("{sent} copies ended"),
        Duration::from_secs(10),
        || async {
            let s = stats(router);
            let failed: u64 = s.failed_by_kind.values().sum();
            s.sent == sent && s.ok + s.http_4xx + s.http_5xx + failed == sent
        },
    )
    .await;
    stats(router)
}

/// A shadow that never answers holds the one copy in flight; two more wait in the queue, the
/// rest are dropped and counted, and the clients notice nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_copies_and_counts_them() {
    let main = TestServer::answering("main").await;
    let shadow = TestServer::answering("shadow").await;
    shadow.set_delay(Duration::from_secs(3600));
    let mut router = router(MirrorOptions {
        queue: 2,
        in_flight: 1,
        timeout: Duration::from_secs(60),
        ..MirrorOptions::default()
    })
    .await;
    router.apply(&mirrored(main.addr, &[shadow.addr], 100));
    for _ in 0..20 {
        let answer = get(&url(&router)).await.unwrap();
        assert_eq!((answer.status, answer.body.as_str()), (200, "main"));
    }
    eventually(
        "the shadow got its one copy",
        Duration::from_secs(10),
        || async { shadow.requests() == 1 },
    )
    .await;
    let s = stats(&router);
    // The queue holds 2 and the task took 1 out of it: 17 dropped, or 18 when the task took its
    // copy only after the queue had filled.
    assert_eq!(s.sent, 1, "{s:?}");
    assert!((17..=18).contains(&s.dropped), "{s:?}");
    assert_eq!((s.ok, s.http_5xx, s.skipped_too_large), (0, 0, 0), "{s:?}");
    router.shutdown().await;
}

/// A new mirror does not wait behind the copies of the one it replaced: those are abandoned,
/// queued or in flight, even when their shadow hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_mirror_abandons_its_copies() {
    let main = TestServer::answering("main").await;
    let hanging = TestServer::answering("hanging").await;
    hanging.set_delay(Duration::from_secs(3600));
    let healthy = TestServer::answering("healthy").await;
    let mut router = router(MirrorOptions {
        queue: 4,
        in_flight: 2,
        timeout: Duration::from_secs(60),
        ..MirrorOptions::default()
    })
    .await;
    router.apply(&mirrored(main.addr, &[hanging.addr], 100));
    for _ in 0..6 {
        assert_eq!(get(&url(&router)).await.unwrap().status, 200);
    }
    eventually("both slots hang", Duration::from_secs(10), || async {
        hanging.requests() == 2
    })
    .await;
    router.apply(&mirrored(main.addr, &[healthy.addr], 99));
    for _ in 0..3 {
        assert_eq!(get(&url(&router)).await.unwrap().status, 200);
    }
    // Long before the hanging copies' 60 s timeout.
    let s = settled(&router, 3).await;
    assert_eq!(s.ok, 3, "{s:?}");
    assert_eq!((healthy.requests(), hanging.requests()), (3, 2));
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_by_status_class_failure_kind_and_latency() {
    let main = TestServer::answering("main").await;
    let shadow = TestServer::answering("shadow").await;
    shadow.set_delay(Duration::from_millis(30));
    let mut router = router(MirrorOptions {
        timeout: Duration::from_millis(500),
        ..MirrorOptions::default()
    })
    .await;
    router.apply(&mirrored(main.addr, &[shadow.addr], 100));
    for _ in 0..10 {
        assert_eq!(get(&url(&router)).await.unwrap().status, 200);
    }
    let s = settled(&router, 10).await;
    assert_eq!(s.name, "v2");
    assert_eq!(s.ok, 10, "{s:?}");
    assert!(s.p50_ms >= 30.0 && s.p99_ms >= s.p50_ms, "{s:?}");

    // The same mirror applied again (new endpoints included) keeps counting.
    shadow.set_status(503);
    shadow.set_delay(Duration::ZERO);
    let second = TestServer::answering("shadow").await;
    second.set_status(404);
    router.apply(&mirrored(main.addr, &[shadow.addr, second.addr], 100));
    for _ in 0..10 {
        assert_eq!(get(&url(&router)).await.unwrap().status, 200);
    }
    let s = settled(&router, 20).await;
    assert_eq!((s.ok, s.http_4xx, s.http_5xx), (10, 5, 5), "{s:?}");

    // Another percent is another mirror: its counters start from zero. Refused, hanging and
    // missing shadows are failures by kind.
    shadow.set_delay(Duration::from_secs(3600));
    router.apply(&mirrored(main.addr, &[refused_addr(), shadow.addr], 50));
    assert_eq!(stats(&router).sent, 0);
    // 50%: the first and the third request are copied.
    for _ in 0..4 {
        assert_eq!(get(&url(&router)).await.unwrap().status, 200);
    }
    let s = settled(&router, 2).await;
    let kinds: Vec<_> = s
        .failed_by_kind
        .iter()
        .map(|(k, n)| (k.as_str(), *n))
        .collect();
    assert_eq!(kinds, [("refused", 1), ("timeout", 1)], "{s:?}");
    router.apply(&mirrored(main.addr, &[], 100));
    assert_eq!(get(&url(&router)).await.unwrap().status, 200);
    let s = settled(&router, 1).await;
    assert_eq!(s.failed_by_kind.get("no_endpoint"), Some(&1), "{s:?}");

    // No mirror, no counters.
    router.apply(&RouteTable {
        main: Route::always(vec![Backend {
            name: "v1".into(),
            weight: 1,
            endpoints: vec![endpoint("v1-1", "v1", main.addr)],
        }]),
        preview: Route::default(),
    });
    assert!(router.mirror_stats().is_empty());
    router.shutdown().await;
}

/// The copy is the request as it went upstream: method, path, headers and body; a body over the
/// limit is not copied (counted), whether its length was announced or not, and the client's
/// request is whole either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copy_is_the_request_with_its_body_up_to_the_limit() {
    let main = TestServer::answering("main").await;
    let shadow = TestServer::answering("shadow").await;
    main.record_requests();
    shadow.record_requests();
    let mut router = router(MirrorOptions {
        max_body: 1000,
        ..MirrorOptions::default()
    })
    .await;
    router.apply(&mirrored(main.addr, &[shadow.addr], 100));
    let body: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let headers = [("X-Trace", "t-1"), ("Cookie", "group=b")];
    let answer = send(&url(&router), "POST", "/orders?x=1", &headers, Some(&body))
        .await
        .unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "main"));
    let (original, copy) = (main.seen().remove(0), shadow.wait_seen(1).await.remove(0));
    assert_eq!(copy, original);
    assert_eq!(copy.method, "POST");
    assert_eq!(copy.path, "/orders?x=1");
    assert_eq!(copy.body, body);
    assert_eq!(copy.header("x-trace"), Some("t-1"));

    // One byte over, announced by Content-Length.
    let large = [body.as_slice(), b"!"].concat();
    let answer = send(&url(&router), "PUT", "/large", &[], Some(&large))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(main.seen().last().unwrap().body, large);
    // Over, in chunks whose total nobody announced.
    let chunked = chunked_request(&router, &[&body[..600], &body[..600]]).await;
    assert!(chunked.starts_with("HTTP/1.1 200"), "{chunked}");
    assert_eq!(main.seen().last().unwrap().body.len(), 1200);
    let s = stats(&router);
    assert_eq!(s.skipped_too_large, 2, "{s:?}");
    // A GET and the POST: nothing else reached the shadow.
    assert_eq!(get(&url(&router)).await.unwrap().status, 200);
    let s = settled(&router, 2).await;
    assert_eq!(s.ok, 2, "{s:?}");
    assert_eq!(shadow.seen().len(), 2);
    router.shutdown().await;
}

/// A POST with a chunked body; the raw answer.
async fn chunked_request(router: &BuiltinRouter, chunks: &[&[u8]]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(router.addrs().main)
        .await
        .unwrap();
    let mut request = b"POST /chunked HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for chunk in chunks {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// The share copied is exact within a request or two, and only the mirrored rule's requests are
/// copied: a header rule before it takes its requests uncopied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_mirrored_rule_is_copied_and_in_the_share_asked() {
    let main = TestServer::answering("main").await;
    let testers = TestServer::answering("testers").await;
    let shadow = TestServer::answering("shadow").await;
    let mut router = router(MirrorOptions::default()).await;
    let mut table = mirrored(main.addr, &[shadow.addr], 25);
    table.main.rules.insert(
        0,
        Rule {
            matcher: Matcher::header("X-Canary", "always"),
            backends: vec![Backend {
                name: "v2".into(),
                weight: 1,
                endpoints: vec![endpoint("v2-t", "v2", testers.addr)],
            }],
            mirror: None,
        },
    );
    router.apply(&table);
    let started = Instant::now();
    for _ in 0..400 {
        assert_eq!(get(&url(&router)).await.unwrap().body, "main");
    }
    for _ in 0..20 {
        let answer = send(&url(&router), "GET", "/", &[("X-Canary", "always")], None)
            .await
            .unwrap();
        assert_eq!(answer.body, "testers");
    }
    // Exactly 100: the sequence that picks the copies is deterministic.
    let s = settled(&router, 100).await;
    assert_eq!(s.ok, 100, "{s:?} after {:?}", started.elapsed());
    assert_eq!(shadow.requests(), 100);
    router.shutdown().await;
}
