//! The SIGTERM drain sequence, on the real binary (issue 2, points 1 to 4).

use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{Demo, PATIENCE};
use nix::sys::signal::Signal;
use zdd_test_support::http::blocking::{Connection, get};
use zdd_test_support::poll::wait_for;

/// Point 1: a request in flight when SIGTERM arrives completes with 200; the process then exits 0.
#[test]
fn request_in_flight_at_sigterm_completes() {
    let mut demo = Demo::start_ready(&[("DRAIN_DELAY", "1s")]);
    let address = demo.address;
    let slow = std::thread::spawn(move || get(address, "/work?ms=2000"));
    demo.wait_for_in_flight(1);
    demo.terminate();

    let answer = slow
        .join()
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.body.contains(r#""worked_ms":2000"#), "{answer:?}");
    assert!(demo.wait_for_exit(PATIENCE).success(), "{:?}", demo.logs());
}

/// Point 2: after SIGTERM readiness answers 503 while `/` still answers 200 until the drain delay
/// has passed. (Order, not wall-clock windows: `/` answering 200 on a new connection is itself the
/// proof that the listener is still open, and the exit comes only after the delay.)
#[test]
fn readiness_fails_at_once_and_service_continues_during_drain_delay() {
    let drain_delay = Duration::from_secs(2);
    let mut demo = Demo::start_ready(&[("DRAIN_DELAY", "2s")]);
    demo.terminate();
    let signalled = Instant::now();
    // Readiness fails as soon as the signal is handled (polled: a loaded machine may take a while
    // to deliver it, which says nothing about the service).
    let readiness = wait_for("readiness to fail after SIGTERM", PATIENCE, || {
        get(demo.address, "/readyz")
            .ok()
            .filter(|answer| answer.status == 503)
    });
    assert_eq!(readiness.body.trim(), "draining");
    let talk_readiness = get(demo.address, "/ready").unwrap();
    assert_eq!(talk_readiness.status, 503, "{talk_readiness:?}");

    let index = get(demo.address, "/").expect("/ still served during the drain delay");
    assert_eq!(index.status, 200, "{index:?}");
    let liveness = get(demo.address, "/healthz").expect("liveness served during the drain");
    assert_eq!(liveness.status, 200, "liveness holds while draining");

    assert!(demo.wait_for_exit(PATIENCE).success(), "{:?}", demo.logs());
    assert!(
        signalled.elapsed() >= drain_delay,
        "exited before the drain delay"
    );
}

/// Point 3: after the drain delay new connections are refused; a keep-alive connection used during the
/// drain gets `Connection: close`; an idle keep-alive connection is closed.
#[test]
fn keep_alive_gets_connection_close_and_new_connections_are_refused_after_the_delay() {
    let drain_delay = Duration::from_secs(1);
    let mut demo = Demo::start_ready(&[("DRAIN_DELAY", "1s")]);

    let mut busy = Connection::open(demo.address).unwrap();
    let before = busy.get("/").unwrap();
    assert_eq!(before.status, 200);
    assert!(
        !before.asks_to_close(),
        "keep-alive before the drain: {before:?}"
    );
    let mut idle = Connection::open(demo.address).unwrap();
    assert_eq!(idle.get("/").unwrap().status, 200);

    // Keeps the process in its shutdown phase after the delay, so refusals can be observed.
    let address = demo.address;
    let lingering = std::thread::spawn(move || {
        let mut keep_alive = Connection::open(address)?;
        keep_alive.get("/work?ms=4000")
    });
    demo.wait_for_in_flight(1);

    demo.terminate();
    let signalled = Instant::now();
    demo.wait_for_status("/readyz", 503);

    let during = busy.get("/").unwrap();
    assert_eq!(during.status, 200, "{during:?}");
    assert!(
        during.asks_to_close(),
        "draining answer must close: {during:?}"
    );
    assert!(
        busy.closed_by_server_within(PATIENCE),
        "the server closes the connection after a Connection: close answer"
    );

    assert!(
        idle.closed_by_server_within(PATIENCE),
        "the idle keep-alive connection is closed once the drain delay has passed"
    );
    assert!(
        signalled.elapsed() >= drain_delay,
        "idle connection closed before the delay"
    );

    let refusal = wait_for("new connections are refused", PATIENCE, || {
        TcpStream::connect_timeout(&demo.address, Duration::from_secs(1)).err()
    });
    assert_eq!(
        refusal.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{refusal}"
    );
    assert!(
        signalled.elapsed() >= drain_delay,
        "refused before the drain delay"
    );

    let slow = lingering
        .join()
        .unwrap()
        .expect("in-flight request answered");
    assert_eq!(slow.status, 200);
    assert!(
        slow.asks_to_close(),
        "a keep-alive answer after the delay closes: {slow:?}"
    );
    assert!(demo.wait_for_exit(PATIENCE).success(), "{:?}", demo.logs());
}

/// Point 4a: a request longer than the shutdown timeout is cut off and the exit code says so.
#[test]
fn shutdown_timeout_cuts_off_and_exits_non_zero() {
    let mut demo = Demo::start_ready(&[("DRAIN_DELAY", "200ms"), ("SHUTDOWN_TIMEOUT", "500ms")]);
    let address = demo.address;
    let slow = std::thread::spawn(move || get(address, "/work?ms=30000"));
    demo.wait_for_in_flight(1);
    demo.terminate();
    let signalled = Instant::now();

    let status = demo.wait_for_exit(PATIENCE);
    assert_eq!(status.code(), Some(1), "{:?}", demo.logs());
    assert!(
        signalled.elapsed() < Duration::from_secs(15),
        "exit waited for the request instead of the timeout"
    );
    let cut_off = slow.join().unwrap();
    assert!(
        cut_off.is_err(),
        "the request was cut off, not answered: {cut_off:?}"
    );
    assert!(
        demo.logs()
            .iter()
            .any(|line| line.contains("requests_cut_off: 1")),
        "the report names the cut-off request: {:?}",
        demo.logs()
    );
}

/// Point 4b: a second SIGTERM while draining ends the process at once, non-zero.
#[test]
fn second_sigterm_exits_at_once() {
    let mut demo = Demo::start_ready(&[("DRAIN_DELAY", "60s")]);
    demo.terminate();
    demo.wait_for_status("/readyz", 503);
    let second = Instant::now();
    demo.terminate();
    let status = demo.wait_for_exit(PATIENCE);
    assert!(
        !status.success(),
        "forced exit must be non-zero: {status:?}"
    );
    assert!(
        second.elapsed() < Duration::from_secs(10),
        "did not exit at once but after {:?}",
        second.elapsed()
    );
}

/// SIGINT (Ctrl-C) drains like SIGTERM, and a clean drain exits 0.
#[test]
fn sigint_drains_cleanly() {
    let mut demo = Demo::start_ready(&[("DRAIN_DELAY", "200ms")]);
    demo.signal(Signal::SIGINT);
    let status = demo.wait_for_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "{:?}", demo.logs());
}

/// SIGTERM during warm-up: never ready, still drains cleanly.
#[test]
fn sigterm_during_warm_up_never_becomes_ready() {
    // The drain delay outlasts the warm-up by far, so the listener is open when readiness is
    // asked after the warm-up, however slow the machine.
    let mut demo = Demo::start(&[("DRAIN_DELAY", "5s"), ("STARTUP_DELAY", "500ms")]);
    demo.terminate();
    demo.wait_for_status("/readyz", 503);
    // Past the warm-up, readiness must still fail: the late warm-up may not undo the drain.
    wait_for("the warm-up has passed", PATIENCE, || {
        (demo.spawned_at.elapsed() > Duration::from_millis(700)).then_some(())
    });
    let answer = get(demo.address, "/readyz").expect("still listening during the drain delay");
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(demo.wait_for_exit(PATIENCE).success(), "{:?}", demo.logs());
}
