//! The text of figures shared by the renderers: Markdown table cells,
//! times and durations, counts, FLOPs, networks, p-values and savings.

use crate::report::compute::configurations::{ConfigurationInfo, NetworkSummary};
use crate::report::compute::early_stop::Saving;

/// A Markdown table cell: characters that Markdown or inline HTML would read
/// as markup (pipes, emphasis, code, links, tags, entities) backslash-escaped,
/// line breaks as spaces (so no text starts a line: a `#` in it cannot make
/// a heading) and other control characters as U+FFFD, so a name or an error
/// message is shown as the text it is.
pub fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '|' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '&' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The fence of a Markdown code block holding `text`: backticks, one more
/// than the longest run of them in `text` and at least three, so that no
/// line of the text can close the block early.
pub fn code_fence(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat((longest + 1).max(3))
}

/// The label of configuration `index` of `infos` as a table cell; `–` when
/// it has none (no sweep) or `infos` does not list it.
pub fn configuration_cell(infos: &[ConfigurationInfo], index: usize) -> String {
    infos
        .get(index)
        .map(|i| i.label.as_str())
        .filter(|l| !l.is_empty())
        .map_or_else(|| "–".to_owned(), cell)
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a Unix time.
pub fn utc_text(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// `1 h 02 min 03 s`-style duration.
pub fn duration_text(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    let (h, m, s) = (s / 3600, s % 3600 / 60, s % 60);
    if h > 0 {
        format!("{h} h {m:02} min {s:02} s")
    } else if m > 0 {
        format!("{m} min {s:02} s")
    } else {
        format!("{s} s")
    }
}

/// An integer with thousands separators: `373,449`.
pub fn count_text(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// FLOPs with an SI prefix and three significant digits: `8.84 MFLOPs`.
pub fn flops_text(flops: u64) -> String {
    let x = flops as f64;
    let (value, prefix) = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        .into_iter()
        .find(|(scale, _)| x >= *scale)
        .map_or((x, ""), |(scale, p)| (x / scale, p));
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.decimals$} {prefix}FLOPs")
}

/// One line on a network: `` `c20k3-…` (reference), 373,449 parameters,
/// 8.84 MFLOPs per training sample (T = 2) `` and the test sample's figure.
pub fn network_text(n: &NetworkSummary) -> String {
    let test = if n.test_steps == n.steps {
        format!(
            "{} per validation or test sample",
            flops_text(n.test_flops_per_sample)
        )
    } else {
        format!(
            "{} per validation or test sample (T = {})",
            flops_text(n.test_flops_per_sample),
            n.test_steps
        )
    };
    format!(
        "`{}`{}, {} parameters, {} per training sample (forward, T = {}), {test}",
        n.name,
        if n.reference { " (reference)" } else { "" },
        count_text(n.parameters),
        flops_text(n.flops_per_sample),
        n.steps
    )
}

/// A p-value: four decimals, or scientific below 0.0001.
pub fn p_text(p: Option<f64>) -> String {
    match p {
        None => "–".to_owned(),
        Some(p) if p < 1e-4 => format!("{p:.1e}"),
        Some(p) => format!("{p:.4}"),
    }
}

/// "an estimated N epochs, D (x GPU hours, y CPU hours)".
pub fn saving_text(s: &Saving) -> String {
    format!(
        "an estimated {} epochs, {} ({:.3} GPU hours, {:.3} CPU hours)",
        s.epochs_saved,
        duration_text(s.saved_seconds),
        s.saved_gpu_hours,
        s.saved_cpu_hours
    )
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn a_code_fence_outgrows_the_backticks_inside() {
        use super::code_fence;
        assert_eq!(code_fence("name = \"x\""), "```");
        assert_eq!(code_fence("a = \"``\""), "```");
        assert_eq!(code_fence("name = \"```\\n# x\""), "````");
        assert_eq!(code_fence("``````"), "```````");
    }

    #[test]
    fn cells_show_markup_as_text() {
        assert_eq!(cell("lr=0.0003 steps=100"), "lr=0.0003 steps=100");
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(
            cell("<img src=x onerror=alert(1)> [x](javascript:y) **b** `c`"),
            "\\<img src=x onerror=alert(1)\\> \\[x\\](javascript:y) \\*\\*b\\*\\* \\`c\\`"
        );
        assert_eq!(
            cell("max_attempts \\ &amp; ~~s~~ !"),
            "max\\_attempts \\\\ \\&amp; \\~\\~s\\~\\~ \\!"
        );
        assert_eq!(cell("esc\u{1b}[2J"), "esc\u{FFFD}\\[2J");
    }
}
