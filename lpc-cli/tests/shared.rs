//! `lpc get`, `lpc set` and the shared part of `lpc list`, on shared values and segments this
//! test process holds (the `lpc` process reaches them through the name files).

use assert_cmd::Command;
use predicates::str::contains;
use tempfile::TempDir;

const LPC: &str = env!("CARGO_BIN_EXE_lpc");

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Default)]
struct Config {
    level: u32,
    mode: Mode,
    label: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Default)]
enum Mode {
    #[default]
    Slow,
    Fast {
        factor: f64,
    },
}

fn lpc(dir: &TempDir, args: &[&str]) -> assert_cmd::assert::Assert {
    Command::new(LPC)
        .arg("--runtime-dir")
        .arg(dir.path())
        .args(args)
        .assert()
}

fn stdout(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(a.get_output().stdout.clone()).unwrap()
}

#[test]
fn get_and_set_a_shared_value_as_json() {
    let dir = TempDir::new().unwrap();
    let value: lpc::Shared<Config> = lpc::SharedOptions::new()
        .runtime_dir(dir.path())
        .capacity(256)
        .open("config")
        .unwrap();
    let out = stdout(&lpc(&dir, &["get", "config", "--compact"]).success());
    assert_eq!(out.trim(), r#"{"label":null,"level":0,"mode":"Slow"}"#);

    lpc(
        &dir,
        &[
            "set",
            "config",
            r#"{"level": 3, "mode": {"Fast": {"factor": 2.5}}, "label": "x"}"#,
        ],
    )
    .success();
    assert_eq!(
        value.get().unwrap(),
        Config {
            level: 3,
            mode: Mode::Fast { factor: 2.5 },
            label: Some("x".into())
        }
    );
    // A value of another shape is refused, naming the field and the type.
    lpc(&dir, &["set", "config", r#"{"levl": 3, "mode": "Slow"}"#])
        .code(1)
        .stderr(contains("has no field `levl`"))
        .stderr(contains("struct Config"));
    lpc(&dir, &["set", "config", "not json"])
        .code(1)
        .stderr(contains("not JSON"));
    lpc(&dir, &["get", "nothing"])
        .code(1)
        .stderr(contains("shared value `nothing` not found"));

    let seg = lpc::SegmentOptions::new()
        .runtime_dir(dir.path())
        .create("frames", 4096)
        .unwrap();
    let out = stdout(&lpc(&dir, &["list"]).success());
    let me = std::process::id().to_string();
    assert!(out.contains("no services in"), "{out}");
    let row = out.lines().find(|l| l.starts_with("config")).expect(&out);
    assert!(row.contains("value") && row.contains("256"), "{row}");
    assert!(
        row.contains("struct Config { level: u32, mode: Mode, label: Option<String> }"),
        "{row}"
    );
    assert!(row.contains(&format!("1 ({me})")), "{row}");
    let row = out.lines().find(|l| l.starts_with("frames")).expect(&out);
    assert!(row.contains("segment") && row.contains("4096"), "{row}");

    let json = stdout(&lpc(&dir, &["list", "--json"]).success());
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["shared"][0]["name"], "config");
    assert_eq!(json["shared"][0]["holders"][0], std::process::id());
    assert_eq!(json["shared"][1]["kind"], "segment");
    drop((value, seg));
    let out = stdout(&lpc(&dir, &["list"]).success());
    assert!(!out.contains("config"), "{out}");
}
