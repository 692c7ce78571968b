//! Where a byte span falls in a file's text, and how an error shows it:
//! `file:line:col: message`, then the line with carets under the span.
//! Plan and seed errors both render through here.

use std::fmt;
use std::ops::Range;

/// 1-based line and column (in characters) of byte `offset` in `text`; an
/// offset inside a character or past the end counts from where it starts.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let start = text.floor_char_boundary(offset);
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// A place in a file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spot {
    /// 1-based line and column.
    pub line: usize,
    pub col: usize,
    /// The line, with carets under the span (to the line's end at most).
    pub excerpt: String,
}

impl Spot {
    /// Where `span` starts in `text`, and its excerpt. A span from a driver
    /// may not fall on a character boundary.
    pub fn of(text: &str, span: Range<usize>) -> Self {
        let start = text.floor_char_boundary(span.start);
        let (line, col) = line_col(text, start);
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let width = text[start..text.floor_char_boundary(span.end.min(line_end)).max(start)]
            .chars()
            .count()
            .max(1);
        Self::show(line, col, &text[line_start..line_end], width)
    }

    /// Where the text stops being UTF-8: `at` is its first bad byte (the
    /// line is shown with that byte replaced).
    pub fn not_utf8(bytes: &[u8], at: usize) -> Self {
        let at = at.min(bytes.len());
        let good = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
        let (line, col) = line_col(good, good.len());
        let line_start = good.rfind('\n').map_or(0, |i| i + 1);
        let line_end = bytes[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| at + i);
        let text = String::from_utf8_lossy(&bytes[line_start..line_end]);
        Self::show(line, col, &text, 1)
    }

    fn show(line: usize, col: usize, text: &str, width: usize) -> Self {
        let gutter = " ".repeat(line.to_string().len());
        let excerpt = format!(
            "{gutter} |\n{line} | {}\n{gutter} | {}{}",
            text.trim_end_matches('\r'),
            " ".repeat(col - 1),
            "^".repeat(width)
        );
        Self { line, col, excerpt }
    }
}

/// `file:line:col: message` and the excerpt, or `file: message` when the
/// place is not known.
pub fn render(
    f: &mut fmt::Formatter<'_>,
    file: &str,
    position: Option<(usize, usize)>,
    message: &str,
    excerpt: Option<&str>,
) -> fmt::Result {
    match position {
        Some((l, c)) => write!(f, "{file}:{l}:{c}: {message}")?,
        None => write!(f, "{file}: {message}")?,
    }
    if let Some(s) = excerpt {
        write!(f, "\n{s}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_count_characters_from_one() {
        let text = "a = 1\nné = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // After "né" (3 bytes): the third column.
        assert_eq!(line_col(text, 9), (2, 3));
        // Inside the é, and past the end.
        assert_eq!(line_col(text, 8), (2, 2));
        assert_eq!(line_col(text, 100), (3, 1));
    }

    #[test]
    fn the_excerpt_underlines_the_span_on_its_line() {
        let text = "[a]\nvus = \"ten\"\n";
        let s = Spot::of(text, 10..15);
        assert_eq!((s.line, s.col), (2, 7));
        assert_eq!(s.excerpt, "  |\n2 | vus = \"ten\"\n  |       ^^^^^");
        // A span running past its line stops at the line's end; an empty one gets one caret.
        assert!(Spot::of(text, 4..100).excerpt.ends_with("| ^^^^^^^^^^^"));
        assert!(Spot::of(text, 4..4).excerpt.ends_with("| ^"));
    }

    #[test]
    fn the_first_byte_that_is_not_utf8_is_pointed_at() {
        let s = Spot::not_utf8(b"a = 1\r\nb = \"caf\xe9\"\r\nc = 2\n", 15);
        assert_eq!((s.line, s.col), (2, 9));
        assert_eq!(s.excerpt, "  |\n2 | b = \"caf\u{fffd}\"\n  |         ^");
    }
}
