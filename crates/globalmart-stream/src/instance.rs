//! A stream instance's stable identity in its consumer group (Kafka static membership,
//! `group.instance.id`): restarted under the same identity, an instance gets its partitions back
//! at once instead of after a rebalance (docs/USER_GUIDE.md, "Production"). Two live instances
//! must never share one (Kafka would fence the older one mid-batch), so an instance first takes
//! a lock named after its group and identity in the realtime database, held by a connection of
//! its own for as long as it runs; a second one with the same identity stops at start.

use anyhow::{bail, Context, Result};
use globalmart_core::db::PgSettings;
use tracing::info;

/// The lock of an identity, released when dropped (its connection closes).
#[derive(Debug)]
pub struct Claim {
    _connection: tokio_postgres::Client,
}

/// Takes identity `instance` in `group`, or explains who holds it.
pub async fn claim(settings: &PgSettings, group: &str, instance: &str) -> Result<Claim> {
    let client = settings
        .connect("globalmart-stream-instance")
        .await
        .context("connecting to hold the instance's lock")?;
    let key = lock_key(group, instance);
    let taken: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .await?
        .get(0);
    if !taken {
        bail!(
            "another stream instance is running as STREAM_INSTANCE_ID={instance} in group \
             {group} (it holds the identity's lock in {settings}); give each instance its own \
             STREAM_INSTANCE_ID"
        );
    }
    info!(%instance, %group, "static group member: a restart under this identity keeps its partitions");
    Ok(Claim {
        _connection: client,
    })
}

/// The advisory lock key of an identity, stable across builds (instances of two versions meet
/// during a rolling upgrade).
fn lock_key(group: &str, instance: &str) -> i64 {
    let name: Vec<u8> = (group.bytes().chain([0]).chain(instance.bytes())).collect();
    fnv1a(&name) as i64
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv1a_and_identities_differ() {
        // The FNV authors' published test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
        assert_ne!(lock_key("g", "stream-0"), lock_key("g", "stream-1"));
        // The separator keeps (group, instance) pairs apart.
        assert_ne!(lock_key("g1", "x"), lock_key("g", "1x"));
    }
}
