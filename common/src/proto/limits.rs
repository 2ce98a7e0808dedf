//! Length limits on strings a worker sends. The coordinator refuses a longer
//! one with INVALID_ARGUMENT naming the field; the worker shortens its own
//! free-form texts (error messages) to fit before sending them.

/// Worker names, host names, device names.
pub const MAX_NAME_BYTES: usize = 256;
/// Device strings ("cpu", "cuda:N") of slots, free slots and completions.
pub const MAX_DEVICE_BYTES: usize = 64;
/// Data set fingerprints (hex).
pub const MAX_FINGERPRINT_BYTES: usize = 128;
/// Worker ids, attempt ids, secrets and checkpoint hashes.
pub const MAX_ID_BYTES: usize = 128;
/// Slots one worker registers.
pub const MAX_SLOTS: usize = 256;
/// Entries of a lease's `free_slots` (a lease gives at most one job per
/// registered slot whatever it asks; this only bounds the request's size).
pub const MAX_FREE_SLOTS: usize = 4096;
/// Attempts one lease or heartbeat reports as running.
pub const MAX_RUNNING: usize = 1024;
/// Error texts of failed attempts.
pub const MAX_ERROR_BYTES: usize = 16 * 1024;

/// `text` cut to at most `max` bytes on a character boundary, with a marker
/// when it was cut.
pub fn truncate(text: &str, max: usize) -> String {
    const MARK: &str = " …[cut]";
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_short_texts_and_cuts_long_ones_to_the_limit() {
        assert_eq!(truncate("abc", 10), "abc");
        let long = "é".repeat(100);
        let cut = truncate(&long, 51);
        assert!(cut.len() <= 51, "{}", cut.len());
        assert!(cut.ends_with("[cut]"));
        assert!(cut.starts_with("éé"));
    }
}
