//! `network.*` keys of `[sweep]`: whole block lists and single values inside
//! one block.
//!
//! ```toml
//! [sweep]
//! "network.blocks" = [
//!   "reference",                                   # no [network]: SLANIMALSNet
//!   [{ conv = 8, kernel = 3 }, { pool = "max", size = 2 }, { flatten = true }, { linear = 19 }],
//! ]
//! "network.blocks.0.conv" = [8, 16]                # block 0's channels
//! ```
//!
//! `network.blocks` takes block lists (each value a list of block tables, as
//! `[network] blocks` is written) or the string `"reference"`, which removes
//! `[network]` (the default network, with its reference names and job ids).
//! `network.blocks.<i>.<field>` sets one key of block `i` of the experiment's
//! own `[network]` list (each value is first checked on that list alone;
//! combined with a swept `network.blocks`, it applies to each swept list); a
//! field of another kind of block is refused when the result is checked.
//! Labels show a whole list by its compact name (`network=c8k3-p2m-f19`) and
//! a block value by its path (`blocks.0.conv=16`).

use crate::experiment::network::{compact_name_of, limits};

/// The whole-list key.
pub const BLOCKS_KEY: &str = "network.blocks";

/// The `network.blocks` value that stands for the default network.
pub const REFERENCE: &str = "reference";

/// The block keys `network.blocks.<i>.<field>` may set.
pub const BLOCK_FIELDS: &[&str] = &[
    "conv", "kernel", "stride", "padding", "pool", "size", "linear", "lif", "tau", "vth", "a",
];

/// Whether `key` is `network.blocks.<i>.<field>` with `i` below
/// [`limits::BLOCKS`] and a field of [`BLOCK_FIELDS`].
pub fn is_block_field_key(key: &str) -> bool {
    let Some(rest) = key.strip_prefix("network.blocks.") else {
        return false;
    };
    let Some((index, field)) = rest.split_once('.') else {
        return false;
    };
    index
        .parse::<usize>()
        .is_ok_and(|i| i < limits::BLOCKS && i.to_string() == index)
        && BLOCK_FIELDS.contains(&field)
}

/// The key part of a label: `network` for whole lists, `blocks.<i>.<field>`
/// for a block value, `None` for other keys.
pub fn label_key(key: &str) -> Option<&str> {
    if key == BLOCKS_KEY {
        return Some("network");
    }
    key.strip_prefix("network.")
        .filter(|_| is_block_field_key(key))
}

/// A block list as a label shows it (its compact name), `None` for values
/// that are not block lists.
pub fn show(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::Array(_) => compact_name_of(value),
        _ => None,
    }
}

/// Sets a `network.*` key in the experiment table; `Ok(false)` when `key`
/// is not one. The error says why the value cannot be set.
pub fn set(table: &mut toml::Table, key: &str, value: &toml::Value) -> Result<bool, String> {
    if key == BLOCKS_KEY {
        if matches!(value, toml::Value::String(s) if s == REFERENCE) {
            table.remove("network");
            return Ok(true);
        }
        let mut network = toml::Table::new();
        network.insert("blocks".to_owned(), value.clone());
        table.insert("network".to_owned(), toml::Value::Table(network));
        return Ok(true);
    }
    if !is_block_field_key(key) {
        return Ok(false);
    }
    let rest = key.trim_start_matches("network.blocks.");
    let (index, field) = rest.split_once('.').unwrap_or((rest, ""));
    let index: usize = index
        .parse()
        .map_err(|_| format!("{index} is not a block index"))?;
    let blocks = table
        .get_mut("network")
        .and_then(|n| n.as_table_mut())
        .and_then(|n| n.get_mut("blocks"))
        .and_then(|b| b.as_array_mut())
        .ok_or_else(|| {
            "changes a block of [network], but the experiment has no block list (write \
             [network] blocks = [...] in the experiment)"
                .to_owned()
        })?;
    let count = blocks.len();
    let block = blocks
        .get_mut(index)
        .and_then(|b| b.as_table_mut())
        .ok_or_else(|| format!("block {index} does not exist: the list has {count} blocks"))?;
    block.insert(field.to_owned(), value.clone());
    Ok(true)
}
