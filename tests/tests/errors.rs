//! The usual mistakes get clear errors that say what is wrong and what to do.

use std::process::Command;

use alkasba_it::{bin_dir, ensure_localstack, repo, unique};

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("command runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn free_port() -> std::net::TcpListener {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap()
}

/// Scripts pointed at a throw-away home, so they touch none of the real LocalStack's files.
fn script(name: &str, home: &std::path::Path, port: u16) -> Command {
    let mut c = Command::new(repo().join("localstack").join(name));
    c.env("ALKASBA_HOME", home).env("LOCALSTACK_PORT", port.to_string()).env("ALKASBA_VENV", repo().join(".local/venv"));
    c
}

#[test]
fn start_refuses_a_port_held_by_something_else() {
    let tmp = tempfile_dir();
    let home = tmp.path().to_path_buf();
    let busy = free_port();
    let port = busy.local_addr().unwrap().port();
    let (ok, out) = run(&mut script("start.sh", &home, port));
    assert!(!ok);
    assert!(out.contains(&format!("port {port} is in use")), "{out}");
}

#[test]
fn start_says_when_localstack_is_not_installed() {
    let tmp = tempfile_dir();
    let home = tmp.path().to_path_buf();
    let port = free_port().local_addr().unwrap().port(); // released at once: free
    let (ok, out) = run(script("start.sh", &home, port).env("ALKASBA_VENV", home.join("no-venv")));
    assert!(!ok);
    assert!(out.contains("LocalStack is not installed") && out.contains("install.sh"), "{out}");
}

#[test]
fn provision_says_when_localstack_is_down() {
    let tmp = tempfile_dir();
    let home = tmp.path().to_path_buf();
    let port = free_port().local_addr().unwrap().port();
    let (ok, out) = run(&mut script("provision.sh", &home, port));
    assert!(!ok);
    assert!(out.contains("not healthy") && out.contains("start.sh"), "{out}");
}

#[test]
fn provision_rejects_an_invalid_template_before_deploying() {
    ensure_localstack().unwrap();
    let tmp = tempfile_dir();
    let dir = tmp.path();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Lake:\n    Type: AWS::S3::Bukket\n").unwrap();
    let (ok, out) = run(Command::new(repo().join("localstack/provision.sh")).arg(unique("bad")).arg(&bad));
    assert!(!ok);
    assert!(out.contains("invalid template") && out.contains("Bukket"), "{out}");
}

#[test]
fn runner_names_missing_credentials() {
    let tmp = tempfile_dir();
    let home = tmp.path().to_path_buf();
    let (ok, out) = run(Command::new(bin_dir().join("alkasba-runner"))
        .args(["run", "--stack", "nope", "--template"])
        .arg(repo().join("infra/template.yaml"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", home.join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("none")));
    assert!(!ok);
    assert!(out.contains("AWS credentials") && out.contains("AWS_ACCESS_KEY_ID"), "{out}");
}

#[test]
fn runner_names_a_stack_that_is_not_deployed_and_a_missing_binary() {
    ensure_localstack().unwrap();
    let template = repo().join("infra/template.yaml");
    let (ok, out) = run(Command::new(bin_dir().join("alkasba-runner")).args(["run", "--stack", "it-never-deployed", "--template"]).arg(&template));
    assert!(!ok);
    assert!(out.contains("it-never-deployed") && out.contains("provision.sh"), "{out}");

    let (ok, out) = run(Command::new(bin_dir().join("alkasba-runner")).args(["list", "--template"]).arg(repo().join("tests/fixtures/does-not-exist.yaml")));
    assert!(!ok);
    assert!(out.contains("does-not-exist.yaml"), "{out}");
}

#[test]
fn simulator_refuses_to_start_without_credentials() {
    let (ok, out) = run(Command::new(bin_dir().join("alkasba-sim")).args(["--listen", "127.0.0.1:0"]).env_remove("ALKASBA_SIM_CONSUMER_KEY"));
    assert!(!ok);
    assert!(out.contains("ALKASBA_SIM_CONSUMER_KEY"), "{out}");
}

/// A directory of its own for a test, removed when the test ends.
fn tempfile_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("it-err-").tempdir().unwrap()
}
