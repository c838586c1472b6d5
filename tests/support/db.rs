//! A fresh PostgreSQL database per test, with the host application's two tables and a few users and
//! events; dropped when the test ends. Needs the server at 127.0.0.1:5432 (scripts/test starts it).

use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::NoTls;

const ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

/// The same users and events as the demo directory, plus user 5 (a name with non-ASCII letters)
/// and event 104.
const FIXTURES: &str = "
    CREATE TABLE users (userid integer PRIMARY KEY, name text NOT NULL);
    CREATE TABLE requested_event (
        eventid      integer PRIMARY KEY,
        userid_tutor integer REFERENCES users(userid),
        userid_tutee integer REFERENCES users(userid));
    INSERT INTO users VALUES
        (1, 'Ada Lovelace'), (2, 'Alan Turing'), (3, 'Grace Hopper'), (4, 'Edsger Dijkstra'),
        (5, 'Zoë Ōkubo 🎓');
    INSERT INTO requested_event VALUES
        (101, 1, 2), (102, 3, 4), (103, 1, 4), (104, 5, 2), (105, NULL, 2);
";

pub struct TestDb {
    pub name: String,
}

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(ADMIN, NoTls)
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (scripts/test starts it)");
    tokio::spawn(conn);
    client
}

impl TestDb {
    /// A fresh database with the host application's tables and chatgate's own (migrated).
    pub async fn create() -> TestDb {
        let db = TestDb::bare().await;
        // The gateway's own tables, as `chatgate migrate` creates them.
        chatgate::migrate::migrate(&db.url())
            .await
            .expect("migrate the test database");
        db
    }

    /// A fresh database with only the host application's tables, as a new user has it.
    pub async fn bare() -> TestDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "chatgate_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = admin().await;
        // Two statements: a multi-statement string would run as one transaction, which both refuse.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .expect("drop a leftover test database");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        let db = TestDb { name };
        let (client, conn) = tokio_postgres::connect(&db.url(), NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(conn);
        client.batch_execute(FIXTURES).await.expect("load fixtures");
        db
    }

    pub fn url(&self) -> String {
        self.url_via("127.0.0.1:5432")
    }

    /// The URL of this database reached through another address (a proxy).
    pub fn url_via(&self, host_port: &str) -> String {
        format!("postgres://postgres@{host_port}/{}", self.name)
    }

    /// A proxy in front of PostgreSQL that is down (the test brings it up), and this database's URL
    /// through it: a database that is not there yet when the gateway starts.
    pub async fn behind_a_down_proxy(&self) -> (super::proxy::Proxy, String) {
        let proxy = super::proxy::Proxy::start("127.0.0.1:5432".parse().expect("address")).await;
        proxy.down();
        let url = self.url_via(&proxy.addr.to_string());
        (proxy, url)
    }

    /// A connection of the test's own to its database.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url(), NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        client
    }

    pub async fn execute(&self, sql: &str) {
        self.client()
            .await
            .batch_execute(sql)
            .await
            .expect("execute");
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async context rules: use a runtime of its own on a plain thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok((client, conn)) = tokio_postgres::connect(ADMIN, NoTls).await {
                        tokio::spawn(conn);
                        let _ = client
                            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .await;
                    }
                });
            }
        })
        .join();
    }
}
