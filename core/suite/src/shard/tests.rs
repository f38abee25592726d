use super::*;

fn plan(n: usize) -> Plan {
    Plan::new("s", (0..n).map(|i| format!("{:02x}", (i * 37) % 256)))
}

#[test]
fn shards_parse_and_say_what_is_wrong() {
    assert_eq!(
        "2/4".parse::<Shard>().expect("ok"),
        Shard { index: 2, count: 4 }
    );
    for (text, why) in [
        ("4/4", "less than N"),
        ("1", "expected I/N"),
        ("a/2", "I is not"),
        ("0/0", "at least 1"),
        ("0/-1", "N is not"),
    ] {
        let e = text.parse::<Shard>().expect_err(text).to_string();
        assert!(e.contains(why) && e.contains(text), "{text}: {e}");
    }
}

#[test]
fn the_slices_cover_the_plan_once_whatever_the_order_of_the_keys() {
    let p = plan(10);
    let mut reversed = p.keys.clone();
    reversed.reverse();
    assert_eq!(Plan::new("s", reversed), p, "sorted");
    assert_eq!(p.id().len(), 12);
    for count in 1..=12 {
        let mut all: Vec<&str> = (0..count)
            .flat_map(|index| p.slice(Shard { index, count }))
            .collect();
        all.sort_unstable();
        assert_eq!(all, p.keys.iter().map(String::as_str).collect::<Vec<_>>());
    }
    assert_eq!(
        p.slice(Shard { index: 1, count: 4 }),
        [&p.keys[1], &p.keys[5], &p.keys[9]]
    );
    assert_ne!(plan(9).id(), p.id());
}

#[test]
fn attempts_get_their_own_files_in_order() {
    let out = tempfile::tempdir().expect("tempdir");
    let p = plan(3);
    let files = ShardLedgers::new(out.path(), &p, Shard { index: 1, count: 2 });
    let other = ShardLedgers::new(out.path(), &p, Shard { index: 0, count: 2 });
    assert!(files.attempts().expect("none yet").is_empty());
    let (a0, f0) = files.claim().expect("claim");
    let (b0, _) = other.claim().expect("claim");
    let (a1, f1) = files.claim().expect("claim");
    assert_eq!((a0, b0, a1), (0, 0, 1));
    assert_eq!(files.attempts().expect("two"), vec![f0.clone(), f1]);
    let name = f0
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    assert_eq!(name, format!("{}.1-of-2.attempt-000.sqlite", p.id()));
    let path = out.path().join("plan.json");
    p.write(&path).expect("write");
    assert_eq!(Plan::read(&path).expect("read"), p);
    std::fs::write(&path, "[").expect("write");
    assert!(
        Plan::read(&path)
            .expect_err("bad")
            .to_string()
            .contains("not a plan file")
    );
}
