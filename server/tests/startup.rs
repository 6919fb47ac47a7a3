//! Start-up behaviour of the real `zk-server` binary: an invalid zoo.cfg value
//! stops it with a message naming the key, the value and the file; unknown
//! keys are logged and ignored; SIGTERM shuts it down cleanly. Servers bind
//! 127.0.0.1 on a free port, in a temp dir, and are always stopped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// Writes `body` as zoo.cfg, with the AdminServer off: it defaults to port
/// 8080, which servers started side by side would fight over.
fn write_config(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("zoo.cfg");
    std::fs::write(&path, format!("{body}\nadmin.enableServer=false\n")).expect("write zoo.cfg");
    path
}

fn server(config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zk-server"));
    command
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.env_remove("SERVER_JVMFLAGS").env_remove("JVMFLAGS");
    command
}

/// Kills the child when dropped, so a failed assertion never leaks a server.
struct Running(Child);

impl Running {
    /// Sends SIGTERM.
    fn terminate(&self) {
        // SAFETY: kill(2) on our own child's pid, not yet reaped.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
    }

    /// Waits up to `limit` for the process to exit; fails the test with
    /// `what` if it does not.
    fn exit_status(&mut self, limit: Duration, what: &str) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn four_letter_word(port: u16, word: &[u8]) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(word).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

fn wait_serving(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if four_letter_word(port, b"ruok").as_deref() == Some("imok") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn invalid_value_names_key_value_and_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(
        dir.path(),
        &format!(
            "tickTime=often\ndataDir={}\nclientPort={}\n",
            dir.path().display(),
            free_port()
        ),
    );
    let output = server(&config).output().expect("run zk-server");
    assert!(
        !output.status.success(),
        "an invalid tickTime must stop start-up"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in ["tickTime", "often", "zoo.cfg"] {
        assert!(
            stderr.contains(needle),
            "message lacks {needle:?}: {stderr}"
        );
    }
}

#[test]
fn unknown_keys_are_ignored_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = write_config(
        dir.path(),
        &format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             4lw.commands.whitelist=ruok,srvr\nsomeFutureSetting=42\n",
            dir.path().display()
        ),
    );
    let mut running = Running(server(&config).spawn().expect("spawn zk-server"));
    assert!(wait_serving(port), "server did not come up");
    let srvr = four_letter_word(port, b"srvr").unwrap_or_default();
    assert!(srvr.contains("Mode: standalone"), "{srvr}");

    running.terminate();
    let status = running.exit_status(Duration::from_secs(10), "server did not stop on SIGTERM");
    assert!(
        status.success(),
        "SIGTERM should be a clean exit, got {status}"
    );
    let mut stderr = String::new();
    if let Some(mut pipe) = running.0.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    assert!(
        stderr.contains("someFutureSetting"),
        "unknown key not logged: {stderr}"
    );
}

/// Switching `storage.backend` on a directory that holds the other backend's
/// data is refused with a message naming both, rather than starting empty.
#[cfg(feature = "rocksdb")]
#[test]
fn switching_backend_on_existing_data_is_refused() {
    for (first, second) in [("native", "rocksdb"), ("rocksdb", "native")] {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let body = |backend: &str| {
            format!(
                "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=ruok\nstorage.backend={backend}\n",
                dir.path().join("data").display()
            )
        };
        let config = write_config(dir.path(), &body(first));
        let mut running = Running(server(&config).spawn().expect("start zk-server"));
        assert!(wait_serving(port), "{first} server did not start");
        running.terminate();
        // SIGTERM is a clean stop on either backend: the pipeline must not
        // report the closing storage as a failure.
        let stopped = running.exit_status(Duration::from_secs(20), "SIGTERM did not stop it");
        assert!(stopped.success(), "{first}: SIGTERM exit {stopped}");
        drop(running);

        let config = write_config(dir.path(), &body(second));
        let mut refused = Running(server(&config).spawn().expect("start zk-server"));
        let status = refused.exit_status(
            Duration::from_secs(20),
            &format!("{first} -> {second}: the server started instead of refusing"),
        );
        let mut stderr = String::new();
        if let Some(mut pipe) = refused.0.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        assert!(!status.success(), "{first} -> {second}: {stderr}");
        assert!(
            stderr.contains("backend data") && stderr.contains("do not migrate"),
            "{first} -> {second}: {stderr}"
        );
    }
}

/// A log pipe whose reader has gone (a dead supervisor, `| head`) must not
/// stop the server or keep SIGTERM from stopping it: log writes then fail,
/// and they are dropped rather than turned into panics.
#[test]
fn closed_stderr_neither_kills_the_server_nor_blocks_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = write_config(
        dir.path(),
        &format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             4lw.commands.whitelist=ruok\n",
            dir.path().join("data").display()
        ),
    );
    let mut running = Running(server(&config).spawn().expect("start zk-server"));
    assert!(wait_serving(port), "server did not start");
    drop(running.0.stderr.take());
    drop(running.0.stdout.take());
    // Every connection logs a line; the server must keep answering.
    for _ in 0..3 {
        assert_eq!(four_letter_word(port, b"ruok").as_deref(), Some("imok"));
    }
    running.terminate();
    let status = running.exit_status(Duration::from_secs(20), "SIGTERM did not stop the server");
    assert!(status.success(), "exit status {status}");
}

/// A binary built without the RocksDB feature refuses `storage.backend=rocksdb`
/// in one line that says how to build one with it, instead of starting on
/// some other backend.
#[cfg(not(feature = "rocksdb"))]
#[test]
fn rocksdb_backend_without_the_feature_says_how_to_build_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = write_config(
        dir.path(),
        &format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nstorage.backend=rocksdb\n",
            dir.path().join("data").display()
        ),
    );
    let mut refused = Running(server(&config).spawn().expect("start zk-server"));
    let status = refused.exit_status(
        Duration::from_secs(20),
        "the server started without a RocksDB backend",
    );
    let mut stderr = String::new();
    if let Some(mut pipe) = refused.0.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("--features rocksdb") && stderr.contains("librocksdb-dev"),
        "no build hint: {stderr}"
    );
}
