//! The ledger's tables, and the upgrade of files written by an older
//! acbench.

use rusqlite::Connection;

/// Schema version, kept in SQLite's `user_version`.
pub(crate) const SCHEMA_VERSION: i64 = 4;

/// The columns of the `runs` table (version 3: `interrupted` is a status).
const RUNS_COLUMNS: &str = "(
    key         TEXT PRIMARY KEY,
    suite       TEXT NOT NULL,
    model       TEXT NOT NULL,
    activation  TEXT NOT NULL,
    optimizer   TEXT NOT NULL,
    dataset     TEXT NOT NULL,
    seed        INTEGER NOT NULL,
    spec        TEXT NOT NULL,
    manifest    TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'finished', 'diverged', 'failed', 'interrupted')),
    error       TEXT,
    diverged_epoch INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 1,
    started_at  REAL NOT NULL,
    finished_at REAL
)";

/// The other tables.
const TABLES: &str = "
CREATE TABLE IF NOT EXISTS epochs (
    run_key    TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
    epoch      INTEGER NOT NULL,
    lr         REAL NOT NULL,
    train_loss REAL NOT NULL,
    train_acc  REAL NOT NULL,
    test_loss  REAL NOT NULL,
    test_acc   REAL NOT NULL,
    wall_s     REAL NOT NULL,
    PRIMARY KEY (run_key, epoch)
);
CREATE TABLE IF NOT EXISTS act_params (
    run_key    TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
    epoch      INTEGER NOT NULL,
    slot       TEXT NOT NULL,
    activation TEXT NOT NULL,
    param      TEXT NOT NULL,
    idx        INTEGER NOT NULL,
    value      REAL NOT NULL,
    PRIMARY KEY (run_key, epoch, slot, param, idx)
);
CREATE TABLE IF NOT EXISTS weight_increments (
    run_key TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
    epoch   INTEGER NOT NULL,
    layer   TEXT NOT NULL,
    norm    REAL NOT NULL,
    PRIMARY KEY (run_key, epoch, layer)
);
-- Version 2: the per-step loss curve.
CREATE TABLE IF NOT EXISTS step_losses (
    run_key TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
    epoch   INTEGER NOT NULL,
    step    INTEGER NOT NULL,
    loss    REAL NOT NULL,
    PRIMARY KEY (run_key, step)
);
-- Version 4: a detector's scores per epoch (COCO's twelve numbers as
-- `coco.ap`, ..., VOC mAPs and per-class APs as `voc07.map`,
-- `voc07.class.NAME`, ...) and its precision-recall curve.
CREATE TABLE IF NOT EXISTS detection_metrics (
    run_key TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
    epoch   INTEGER NOT NULL,
    metric  TEXT NOT NULL,
    value   REAL NOT NULL,
    PRIMARY KEY (run_key, epoch, metric)
);
CREATE TABLE IF NOT EXISTS pr_curves (
    run_key   TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
    epoch     INTEGER NOT NULL,
    idx       INTEGER NOT NULL,
    precision REAL NOT NULL,
    PRIMARY KEY (run_key, epoch, idx)
);
";

/// Creates the tables a new file lacks and upgrades those of an older
/// version: version 3 added the status `interrupted` to the `runs` table's
/// check, which SQLite cannot change in place, so the table is rebuilt as
/// SQLite's documentation says (foreign keys off, copy, drop, rename), in
/// one transaction.
pub(crate) fn create_or_upgrade(conn: &mut Connection, found: i64) -> rusqlite::Result<()> {
    if (1..3).contains(&found) {
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        let tx = conn.transaction()?;
        tx.execute_batch(&format!(
            "CREATE TABLE runs_v3 {RUNS_COLUMNS};
             INSERT INTO runs_v3 SELECT * FROM runs;
             DROP TABLE runs;
             ALTER TABLE runs_v3 RENAME TO runs;"
        ))?;
        tx.commit()?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
    }
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS runs {RUNS_COLUMNS};{TABLES}"
    ))?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_3_file_gets_the_detection_tables() {
        let mut conn = Connection::open_in_memory().expect("open");
        let v3 = TABLES
            .split("-- Version 4")
            .next()
            .expect("the version 3 tables");
        conn.execute_batch(&format!(
            "CREATE TABLE runs {RUNS_COLUMNS};{v3} PRAGMA user_version = 3;"
        ))
        .expect("v3 file");
        let tables = |conn: &Connection| -> i64 {
            conn.query_row(
                "SELECT count(*) FROM sqlite_master
                 WHERE name IN ('detection_metrics', 'pr_curves')",
                [],
                |r| r.get(0),
            )
            .expect("count")
        };
        assert_eq!(tables(&conn), 0);
        create_or_upgrade(&mut conn, 3).expect("upgrade");
        assert_eq!(tables(&conn), 2);
    }

    #[test]
    fn a_version_2_file_is_upgraded_with_its_runs_and_epochs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v2.sqlite");
        let mut conn = Connection::open(&path).expect("open");
        let v2 = RUNS_COLUMNS.replace(", 'interrupted'", "");
        assert_ne!(v2, RUNS_COLUMNS);
        conn.execute_batch(&format!(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE runs {v2};{TABLES}
             INSERT INTO runs (key, suite, model, activation, optimizer, dataset, seed, spec,
                               manifest, status, started_at)
             VALUES ('k', 's', 'm', 'relu', 'sgd', 'd', 0, '{{}}', '{{}}', 'finished', 1.0);
             INSERT INTO epochs VALUES ('k', 0, 0.1, 1.0, 0.5, 1.0, 0.5, 2.0);
             PRAGMA user_version = 2;"
        ))
        .expect("v2 file");
        assert!(
            conn.execute("UPDATE runs SET status = 'interrupted'", [])
                .is_err(),
            "version 2 refuses the new status"
        );
        create_or_upgrade(&mut conn, 2).expect("upgrade");
        let epochs: i64 = conn
            .query_row("SELECT count(*) FROM epochs", [], |r| r.get(0))
            .expect("count");
        assert_eq!(epochs, 1, "the epochs survive the rebuild of runs");
        conn.execute("UPDATE runs SET status = 'interrupted'", [])
            .expect("version 3 takes the new status");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        let check: String = conn
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .unwrap_or_default();
        assert_eq!(check, "", "no dangling foreign key");
    }
}
