//! A smoke run of the benchmark (lpc and the floors, no peers): tiny budgets, checking that
//! every section runs and reports, not the figures.

use std::process::Command;

#[test]
fn tiny_run_reports_every_section() {
    let dir = std::env::temp_dir().join(format!("lpc-bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("results.json");
    let markdown = dir.join("report.md");
    let out = Command::new(env!("CARGO_BIN_EXE_lpc-bench"))
        .args([
            "--quick",
            "--samples",
            "200",
            "--warmup",
            "20",
            "--seconds",
            "0.02",
            "--sizes",
            "1024,1048576",
            "--idle-seconds",
            "1",
            "--idle-clients",
            "4",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--markdown")
        .arg(&markdown)
        .output()
        .expect("lpc-bench runs");
    assert!(
        out.status.success(),
        "lpc-bench failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let records = results["records"].as_array().unwrap();
    let has = |system: &str, workload: serde_json::Value| {
        records.iter().any(|r| {
            r["system"] == system && r["workload"] == workload && r["summary"]["p50"].is_u64()
        })
    };
    for system in [
        "raw-spin",
        "lpc-adaptive",
        "lpc-adaptive-nostats",
        "raw-futex",
        "lpc-block",
        "raw-futex-1cpu",
        "lpc-block-1cpu",
        "lpc-adaptive-1cpu",
        "raw-unix",
    ] {
        assert!(has(system, "small".into()), "no small call for {system}");
    }
    for system in [
        "memcpy",
        "raw-unix",
        "lpc-adaptive",
        "lpc-block",
        "lpc-loan",
    ] {
        assert!(
            has(system, serde_json::json!({"echo": 1048576})),
            "no 1 MiB echo for {system}"
        );
    }
    assert!(has("lpc-adaptive", serde_json::json!({"threads": 2})));
    assert!(has("lpc-adaptive", serde_json::json!({"procs": 2})));
    assert!(has("lpc-adaptive", "connect".into()));
    assert!(results["idle"]["shm_per_connection"].as_u64().unwrap() > 0);
    let handshake = results["handshake"].as_array().unwrap();
    let row = |name: &str| {
        handshake
            .iter()
            .find(|h| h["interface"] == name)
            .unwrap_or_else(|| panic!("no handshake row for {name}"))
    };
    let (small, large) = (row("Bench"), row("Large"));
    assert_eq!(
        (large["methods"].as_u64(), large["types"].as_u64()),
        (Some(50), Some(30))
    );
    assert!(
        large["description_bytes"].as_u64().unwrap() > small["description_bytes"].as_u64().unwrap()
    );
    for h in [small, large] {
        for part in ["trace", "connect", "check", "call"] {
            assert!(
                h[part]["p50"].as_u64().unwrap() > 0,
                "{part} of {}",
                h["interface"]
            );
        }
    }
    let concurrent = &results["concurrent"];
    for row in ["alone", "b_alone", "b_beside_slow", "slow"] {
        assert!(
            concurrent[row]["p50"].as_u64().unwrap() > 0,
            "concurrent {row}"
        );
    }
    let mixes = concurrent["mixes"].as_array().unwrap();
    assert_eq!(
        mixes
            .iter()
            .map(|m| m["slow_every"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [0, 100]
    );
    assert!(mixes.iter().all(|m| m["fast_calls"].as_u64().unwrap() > 0));
    for workload in ["post", "post-latency", "post-latency-idle"] {
        assert!(has("lpc-oneway", workload.into()), "no {workload} for lpc");
    }
    let oneway = &results["oneway"];
    let fanout = oneway["fanout"].as_array().unwrap();
    assert_eq!(
        fanout
            .iter()
            .map(|f| f["subscribers"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2]
    );
    for f in fanout {
        assert!(f["received"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n.as_u64().unwrap() > 0));
        assert!(f["latency"]["p50"].as_u64().unwrap() > 0);
    }
    // The system calls of posts to a sleeping service, counted by strace (scripts/setup.sh
    // installs it): none per message. Not a matter of timing: a post rings the doorbell only
    // when the service has gone to sleep (after at least its spin), and waits for room at most
    // once per half queue.
    let syscalls = &oneway["syscalls"];
    assert!(
        syscalls.is_object(),
        "system calls not counted: {}",
        oneway["syscalls_note"]
    );
    let (messages, thread) = (
        syscalls["messages"].as_u64().unwrap(),
        syscalls["thread"].as_u64().unwrap(),
    );
    assert_eq!(messages, 1_000_000);
    assert!(
        thread * 100 <= messages,
        "{thread} system calls in {messages} posts"
    );
    // Each burst's first post found the service asleep, and strace saw the wake-up lpc counted.
    assert!(syscalls["wakes"].as_u64().unwrap() >= 1);
    assert!(syscalls["by_name"]["futex"].as_u64().unwrap() >= 1);
    let report = std::fs::read_to_string(&markdown).unwrap();
    for heading in [
        "## Targets",
        "## Small call",
        "## Payloads",
        "## Pinned to one CPU",
        "## Handshake of a large interface",
        "## Calls that never wait on each other",
        "## One-way calls and events",
    ] {
        assert!(report.contains(heading), "no {heading:?} in the report");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
