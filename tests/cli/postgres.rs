//! A throwaway PostgreSQL server for the store's tests: `initdb` and
//! `pg_ctl` from the Debian `postgresql` package (on PATH or under
//! /usr/lib/postgresql/*/bin), a data folder in a temporary directory,
//! trust authentication on 127.0.0.1 and a free port, stopped on drop.
//! PostgreSQL refuses to run as root, so as root it runs as `postgres`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

use tempfile::TempDir;

pub struct TestPostgres {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn find_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut installed: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    installed.sort();
    installed.reverse();
    on_path
        .into_iter()
        .chain(installed)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

impl TestPostgres {
    /// A started server, or `None` (with the reason on stderr) where
    /// PostgreSQL is not installed. With `CAMPAIGN_REQUIRE_POSTGRES` set
    /// (CI sets it), a missing or failed server fails the test instead.
    pub fn start() -> Option<Self> {
        let required = std::env::var_os("CAMPAIGN_REQUIRE_POSTGRES").is_some();
        let Some(bin) = find_bin() else {
            assert!(!required, "PostgreSQL (initdb, pg_ctl) is not installed");
            eprintln!("PostgreSQL is not installed: its half of this test is skipped");
            return None;
        };
        let dir = TempDir::new().unwrap();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "cannot hand the data folder to the postgres user");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let server = Self {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = server.data();
        server.pg(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "campaign",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=50",
            server.dir.path().display()
        );
        let log = server.dir.path().join("server.log").display().to_string();
        server.pg(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-o", &options, "-w", "start"],
        );
        Some(server)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn pg(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = command.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A new, empty database on this server, as a URL.
    pub fn database(&self, name: &str) -> String {
        let admin = format!("postgres://campaign@127.0.0.1:{}/postgres", self.port);
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        format!("postgres://campaign@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let data = self.data();
        let path = self.bin.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let _ = command
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}
