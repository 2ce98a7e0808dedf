//! Names that reach an operator's terminal, CSV and Markdown: no control
//! characters (an escape sequence in a worker's name would repaint
//! `status --watch`).

/// The first control character of `text` (C0, DEL or C1), if any.
pub fn first_control(text: &str) -> Option<char> {
    text.chars().find(|c| c.is_control())
}

/// `Err` naming the character's code point when `text` holds a control character.
pub fn check_no_control(text: &str) -> Result<(), String> {
    match first_control(text) {
        Some(c) => Err(format!(
            "control character U+{:04X} is not allowed",
            u32::from(c)
        )),
        None => Ok(()),
    }
}

/// `text` with every control character except line feed and tab replaced by
/// U+FFFD, for free text (error messages) that is kept rather than refused.
pub fn scrub_controls(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_c1_controls_are_found_and_printable_text_passes() {
        assert_eq!(check_no_control("gpu-node-3 (A100)"), Ok(()));
        assert_eq!(check_no_control("ünïcødé ✓"), Ok(()));
        let err = check_no_control("bad\u{1b}[2Jname").unwrap_err();
        assert!(err.contains("U+001B"), "{err}");
        assert_eq!(first_control("x\u{9b}y"), Some('\u{9b}'));
        assert_eq!(first_control("tab\there"), Some('\t'));
    }

    #[test]
    fn scrubbing_keeps_line_feeds_and_tabs_only() {
        assert_eq!(
            scrub_controls("line1\nline2\t\u{1b}[31mred\r"),
            "line1\nline2\t\u{FFFD}[31mred\u{FFFD}"
        );
    }
}
