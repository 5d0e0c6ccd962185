//! Ports for the processes the local platform starts, picked so that nothing else takes them first.

use std::collections::BTreeSet;
use std::io;
use std::sync::Mutex;

use crate::sync::lock;

/// A port that is free on `ip` now, for a child process to bind. It is picked below the kernel's
/// ephemeral range: a port from `bind(0)` could be taken by any outgoing connection (the router's
/// own, to the replicas) between this check and the child's `bind`.
pub fn pick_port(ip: std::net::IpAddr) -> io::Result<u16> {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    // Never hand out the same port twice in this process: two pickers racing (two routers
    // starting at once) would otherwise collide often (the birthday paradox).
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    if ephemeral_low > 11_000 {
        for _ in 0..100 {
            let port = rand::random_range(10_000..ephemeral_low);
            let mut handed_out = lock(&HANDED_OUT);
            if !handed_out.contains(&port) && std::net::TcpListener::bind((ip, port)).is_ok() {
                handed_out.insert(port);
                return Ok(port);
            }
        }
    }
    Ok(std::net::TcpListener::bind((ip, 0))?.local_addr()?.port())
}
