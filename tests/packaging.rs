//! Packaging: the CLI's version and config sources, and the files that install coregate (the
//! systemd unit and the Dockerfile) name what the README says they do.

use std::process::Command;

fn coregate(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coregate"));
    cmd.args(args).env_remove("COREGATE_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn version_and_config_from_the_environment() {
    let (code, out) = coregate(&["--version"], &[]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!("coregate {}", env!("CARGO_PKG_VERSION"))
    );
    let (code, out) = coregate(&["check"], &[("COREGATE_CONFIG", "config/operations.toml")]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("config/operations.toml: ok (1 listeners, 0 upstreams, 2 routes)"),
        "{out}"
    );
    let (code, out) = coregate(&["check"], &[("COREGATE_CONFIG", "config/missing.toml")]);
    assert_eq!(code, 1);
    assert!(out.contains("config/missing.toml"), "{out}");
    let (code, _) = coregate(
        &[
            "--log-level",
            "debug",
            "check",
            "--config",
            "config/coregate.toml",
        ],
        &[],
    );
    assert_eq!(code, 0);
}

#[test]
fn the_systemd_unit_and_the_dockerfile() {
    let unit = std::fs::read_to_string("scripts/coregate.service").unwrap();
    for line in [
        "ExecStart=/usr/local/bin/coregate run --config /etc/coregate/coregate.toml",
        "ExecReload=/usr/local/bin/coregate check --config /etc/coregate/coregate.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillSignal=SIGTERM",
        "LimitNOFILE=",
        "LimitMEMLOCK=infinity",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(line)),
            "unit lacks {line}"
        );
    }
    let docker = std::fs::read_to_string("Dockerfile").unwrap();
    assert!(docker.contains("cargo build --release --locked"));
    assert!(docker.contains("ENTRYPOINT [\"/usr/local/bin/coregate\"]"));
}
