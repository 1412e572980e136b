//! `lpc-events serve NAME [--stream]`: serves `FeedControl` with the `Feed` events in
//! `$LPC_RUNTIME_DIR` and prints `ready <pid>`; with `--stream`, also emits `item` without
//! pause from a thread of its own (seq counting up, 16-byte bodies).
//!
//! `lpc-events subscribe NAME`: subscribes to all events, prints `subscribed`, and never
//! reads (a subscriber for the tests to kill).

use lpc::{SubscribeOptions, Subscription};
use lpc_tests::feed::{FeedControlServer, FeedEmitter, FeedEvent, FeedService};

fn main() -> Result<(), lpc::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(0).as_str() {
        "serve" => {
            let events = FeedEmitter::new();
            let options = lpc::ServerOptions::new().max_connections(2000);
            let server = lpc::Server::bind_with(&arg(1), options)?.with_events(&events);
            if args.iter().any(|a| a == "--stream") {
                let events = events.clone();
                std::thread::spawn(move || {
                    for seq in 0u64.. {
                        events.item(seq, vec![7; 16]);
                        if seq % 64 == 0 {
                            std::thread::yield_now();
                        }
                    }
                });
            }
            println!("ready {}", std::process::id());
            server.serve(FeedControlServer::new(FeedService { events }))
        }
        "subscribe" => {
            let _subscription =
                Subscription::<FeedEvent>::open(&arg(1), SubscribeOptions::new().ring(4096))?;
            println!("subscribed");
            loop {
                std::thread::park();
            }
        }
        other => panic!("unknown command {other:?}"),
    }
}
