//! Names that reach an operator's terminal, CSV and Markdown: no control
//! characters (an escape sequence in a worker's name would repaint
//! `status --watch`), and none that hide text or turn its direction (bidi
//! overrides and isolates, zero-width characters, line and paragraph
//! separators: a name that reads as another).

/// Whether `c` is invisible or changes how the text around it reads: the
/// bidirectional marks, embeddings, overrides and isolates, the zero-width
/// characters and joiners, the byte order mark, and the line and paragraph
/// separators.
fn is_hidden(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// The first control character of `text` (C0, DEL or C1), if any.
pub fn first_control(text: &str) -> Option<char> {
    text.chars().find(|c| c.is_control())
}

/// `Err` naming the character's code point when `text` holds a control
/// character or a hidden one (see the module docs).
pub fn check_no_control(text: &str) -> Result<(), String> {
    if let Some(c) = first_control(text) {
        return Err(format!(
            "control character U+{:04X} is not allowed",
            u32::from(c)
        ));
    }
    match text.chars().find(|&c| is_hidden(c)) {
        Some(c) => Err(format!(
            "invisible or direction-changing character U+{:04X} is not allowed",
            u32::from(c)
        )),
        None => Ok(()),
    }
}

/// `text` with every control character except line feed and tab, and every
/// hidden one, replaced by U+FFFD, for free text (error messages) that is
/// kept rather than refused.
pub fn scrub_controls(text: &str) -> String {
    text.chars()
        .map(|c| {
            if (c.is_control() && c != '\n' && c != '\t') || is_hidden(c) {
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
    fn bidi_overrides_zero_width_and_separators_are_refused() {
        // A right-to-left override makes "gpu-1\u{202E}3-edon" show as another name.
        for (text, code) in [
            ("gpu-1\u{202E}3-edon", "U+202E"),
            ("gpu\u{2066}x\u{2069}", "U+2066"),
            ("gpu\u{200B}1", "U+200B"),
            ("gpu\u{200D}1", "U+200D"),
            ("gpu\u{2028}1", "U+2028"),
            ("gpu\u{2029}1", "U+2029"),
            ("\u{FEFF}gpu", "U+FEFF"),
            ("gpu\u{061C}", "U+061C"),
        ] {
            let err = check_no_control(text).unwrap_err();
            assert!(err.contains(code) && err.contains("invisible"), "{err}");
        }
        // Letters of right-to-left scripts and visible punctuation still pass.
        assert_eq!(check_no_control("עבודה-1 — gpu"), Ok(()));
        assert_eq!(scrub_controls("a\u{202E}b"), "a\u{FFFD}b");
    }

    #[test]
    fn scrubbing_keeps_line_feeds_and_tabs_only() {
        assert_eq!(
            scrub_controls("line1\nline2\t\u{1b}[31mred\r"),
            "line1\nline2\t\u{FFFD}[31mred\u{FFFD}"
        );
    }
}
