//! Starting the real `graphbox serve` binary for the integration tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_graphbox");

/// A running `graphbox serve`, stopped when dropped.
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `graphbox --data-dir DIR serve --listen 127.0.0.1:<free port>`
/// with `extra` arguments and waits until it listens. Returns it and the
/// address it listens on (`http://127.0.0.1:<port>`), whatever public URL
/// it prints.
pub fn serve(dir: &str, extra: &[&str]) -> (Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .args(["--data-dir", dir, "serve", "--listen", &listen])
        .args(extra)
        .env_remove("GRAPHBOX_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("graphbox serve starts");
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("graphbox serve printed its address")
            .unwrap();
        if line.contains("listening on ") {
            break;
        }
    }
    // Keep draining its output so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (server, format!("http://{listen}"))
}
