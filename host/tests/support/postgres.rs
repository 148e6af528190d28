//! A real PostgreSQL server for the tests: Debian's binaries (installed by
//! `scripts/install-postgres.sh` the first time), a cluster made by `initdb` in a temp
//! dir and run as the unprivileged `postgres` user (the server refuses root), one per
//! test binary, and a fresh database per test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The running cluster: where it listens, and its superuser.
struct Cluster {
    port: u16,
}

/// The superuser `initdb` makes (trust authentication: the server listens on 127.0.0.1
/// only, for this test binary).
const SUPERUSER: &str = "floom";

/// Whether this test binary runs its servers on PostgreSQL: `on_postgres` (other test
/// files again) does.
pub const ON_POSTGRES: bool = ends_with(env!("CARGO_CRATE_NAME").as_bytes(), b"on_postgres");

/// `str::ends_with`, in a constant.
const fn ends_with(name: &[u8], suffix: &[u8]) -> bool {
    let (n, s) = (name.len(), suffix.len());
    if n < s {
        return false;
    }
    let mut i = 0;
    while i < s {
        if name[n - s + i] != suffix[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The database of the server on `data_dir`: made for its first start and kept in the
/// data dir, so a restarted server finds its store again.
pub fn database_of(data_dir: &Path) -> String {
    let file = data_dir.join("test-database-url");
    if let Ok(url) = std::fs::read_to_string(&file) {
        return url;
    }
    // A thread of its own: callers are often inside a runtime already.
    let url = std::thread::spawn(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(database())
    })
    .join()
    .expect("make a test database");
    std::fs::write(&file, &url).expect("remember the test database");
    url
}

/// A new, empty database on this binary's server; returns its URL.
pub async fn database() -> String {
    let cluster = cluster();
    // Unique across the copies of this module in one binary, too.
    let name = format!("t{}", uuid::Uuid::now_v7().simple());
    let admin = format!("postgres://{SUPERUSER}@127.0.0.1:{}/postgres", cluster.port);
    // The port opens before the server has finished starting up.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (client, connection) = loop {
        match tokio_postgres::connect(&admin, tokio_postgres::NoTls).await {
            Ok(connected) => break connected,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot connect to the test server: {e}"),
        }
    };
    let connection = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    drop(client);
    let _ = connection.await;
    format!("postgres://{SUPERUSER}@127.0.0.1:{}/{name}", cluster.port)
}

/// This process's cluster. A test binary that includes several test files has a copy
/// of this module per file: the first to get here starts the server and leaves its port
/// in the cluster's folder, the others find it there.
fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("floom-pg-{}", std::process::id()));
        let lock = std::fs::File::create(root.with_extension("lock")).expect("lock file");
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("lock");
        let port_file = root.join("port");
        if let Some(port) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|port| port.parse().ok())
        {
            return Cluster { port };
        }
        let cluster = start(&root);
        std::fs::write(&port_file, cluster.port.to_string()).expect("write the port");
        cluster
    })
}

/// The directory of Debian's PostgreSQL binaries, installing them when missing.
fn binaries() -> PathBuf {
    let found = || {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path().join("bin"))
            .filter(|bin| bin.join("initdb").is_file())
            .collect();
        dirs.sort();
        dirs.pop()
    };
    if let Some(bin) = found() {
        return bin;
    }
    let lock =
        std::fs::File::create(std::env::temp_dir().join("floom-postgres.lock")).expect("lock file");
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("lock");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/install-postgres.sh"
    );
    let status = Command::new("sh")
        .arg(script)
        .status()
        .expect("run the install script");
    assert!(
        status.success(),
        "installing PostgreSQL failed: run scripts/install-postgres.sh as root"
    );
    found().expect("initdb after the install")
}

/// The `postgres` account's uid and gid (the package makes it).
fn postgres_account() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&"postgres") && fields.len() > 3)
        .map(|fields| {
            (
                fields[2].parse().expect("uid"),
                fields[3].parse().expect("gid"),
            )
        })
        .expect("a postgres account (scripts/install-postgres.sh makes it)")
}

/// Runs `command` as the `postgres` account.
fn as_postgres(command: &mut Command, (uid, gid): (u32, u32)) -> &mut Command {
    use std::os::unix::process::CommandExt as _;
    command.uid(uid).gid(gid).env("HOME", std::env::temp_dir())
}

/// Makes the cluster and starts its server, which stops when this process ends.
fn start(root: &Path) -> Cluster {
    let bin = binaries();
    let account = postgres_account();
    remove_stale_clusters(root.parent().expect("temp dir"));
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root).expect("cluster dir");
    rustix::fs::chown(
        root,
        Some(rustix::fs::Uid::from_raw(account.0)),
        Some(rustix::fs::Gid::from_raw(account.1)),
    )
    .expect("give the cluster dir to postgres");
    let data = root.join("data");
    let status = as_postgres(&mut Command::new(bin.join("initdb")), account)
        .args(["--auth=trust", "--encoding=UTF8", "--no-sync", "--username"])
        .arg(SUPERUSER)
        .arg("-D")
        .arg(&data)
        .stdout(Stdio::null())
        .status()
        .expect("run initdb");
    assert!(status.success(), "initdb failed");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let log = std::fs::File::create(root.join("server.log")).expect("server log");
    // The server stops when this process ends, however it ends: a shell between them
    // waits for its stdin (a pipe this process holds until it exits) to close, then
    // asks the server for a fast shutdown.
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(concat!(
            r#"uid=$1; gid=$2; shift 2; "#,
            r#"setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@" & pid=$!; "#,
            r#"read _; kill -INT "$pid"; wait "$pid""#
        ))
        .arg("sh")
        .arg(account.0.to_string())
        .arg(account.1.to_string())
        .arg(bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", root.display()))
        // Tests need no durability against a power loss; a benchmark runs with the
        // defaults.
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "max_connections=400"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start postgres");
    // Held, with its stdin (never written, never closed), for as long as this process
    // lives.
    static WATCHDOG: OnceLock<std::process::Child> = OnceLock::new();
    let _ = WATCHDOG.set(watchdog);
    wait_ready(port);
    Cluster { port }
}

/// Waits until the server accepts connections.
fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "postgres did not start in 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Clusters (and their lock files) left by test binaries that ended: their pid is gone.
fn remove_stale_clusters(temp: &Path) {
    for entry in std::fs::read_dir(temp).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix("floom-pg-"))
            .map(|rest| rest.trim_end_matches(".lock"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let path = entry.path();
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
    }
}
