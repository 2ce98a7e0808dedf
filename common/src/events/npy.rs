//! The `.npy` files this project reads and writes: sliced samples (a structured
//! array `x:int16, y:int16, t:int64, p:bool`, one record per event), float32
//! tensors (`coordinator data frames`) and unsigned integer arrays (the frames
//! a worker exports for a training script, docs/trainers.md). Readers accept any NPY 1.0-3.0 file with
//! a structured dtype holding integer or bool fields `x`, `y`, `t`, `p` (in any
//! order, either endianness), so samples sliced by the reference's Python
//! scripts load too.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::events::Event;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Why an `.npy` file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The content is not what this reader expects.
    #[error("{path}: byte offset {offset}: {what}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Where the problem is.
        offset: u64,
        /// What is wrong.
        what: String,
    },
}

/// One scalar type of a dtype, e.g. `<i8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scalar {
    kind: u8, // b'i', b'u', b'b', b'f'
    size: usize,
    big_endian: bool,
}

fn parse_scalar(s: &str) -> Option<Scalar> {
    let b = s.as_bytes();
    if b.len() < 3 {
        return None;
    }
    let big_endian = match b[0] {
        b'<' | b'|' | b'=' => false,
        b'>' => true,
        _ => return None,
    };
    let kind = b[1];
    // Byte 1 was checked to be ASCII only if it is a known kind; `get` keeps a
    // multi-byte character there from splitting the string mid-character.
    let size: usize = s.get(2..)?.parse().ok()?;
    let ok = match kind {
        b'i' | b'u' => matches!(size, 1 | 2 | 4 | 8),
        b'b' => size == 1,
        b'f' => matches!(size, 4 | 8),
        _ => false,
    };
    ok.then_some(Scalar {
        kind,
        size,
        big_endian,
    })
}

impl Scalar {
    /// Reads an integer (or bool) value.
    fn read_int(&self, bytes: &[u8]) -> Option<i64> {
        let mut buf = [0u8; 8];
        let src = &bytes[..self.size];
        if self.big_endian {
            buf[8 - self.size..].copy_from_slice(src);
            buf.reverse();
        } else {
            buf[..self.size].copy_from_slice(src);
        }
        let raw = u64::from_le_bytes(buf);
        match self.kind {
            b'b' | b'u' => i64::try_from(raw).ok(),
            b'i' => {
                let shift = 64 - 8 * self.size as u32;
                Some(((raw << shift) as i64) >> shift)
            }
            _ => None,
        }
    }
}

/// A parsed header: the dtype (one scalar or named fields with offsets), the
/// shape, and where the data starts.
#[derive(Debug)]
struct Header {
    fields: Vec<(String, Scalar, usize)>,
    scalar: Option<Scalar>,
    record: usize,
    shape: Vec<usize>,
    data_start: usize,
}

/// A tiny tokenizer for the Python literal in an NPY header.
fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' || c == '"' {
            chars.next();
            let mut t = String::from("'");
            for d in chars.by_ref() {
                if d == c {
                    break;
                }
                t.push(d);
            }
            out.push(t);
        } else if "{}()[],:".contains(c) {
            out.push(c.to_string());
            chars.next();
        } else {
            let mut t = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_whitespace() || "{}()[],:'\"".contains(d) {
                    break;
                }
                t.push(d);
                chars.next();
            }
            out.push(t);
        }
    }
    out
}

/// A format error at `offset` of the file at `path`.
fn format_error(path: &Path, offset: usize, what: impl Into<String>) -> NpyError {
    NpyError::Format {
        path: path.to_path_buf(),
        offset: offset as u64,
        what: what.into(),
    }
}

/// An I/O error on the file at `path`.
fn io_error(path: &Path) -> impl Fn(std::io::Error) -> NpyError + '_ {
    |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The header's text and where it starts, after the magic, version and length.
fn header_text<'a>(bytes: &'a [u8], path: &Path) -> Result<(&'a str, usize), NpyError> {
    let fail = |offset: usize, what: &str| format_error(path, offset, what);
    if bytes.len() < 10 || !bytes.starts_with(MAGIC) {
        return Err(fail(0, "not an .npy file (no \\x93NUMPY magic)"));
    }
    let (len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(fail(8, "truncated header length"));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        _ => return Err(fail(6, "unsupported .npy version")),
    };
    let Some(text) = bytes.get(start..start + len) else {
        return Err(fail(start, "truncated header"));
    };
    let text = std::str::from_utf8(text).map_err(|_| fail(start, "header is not text"))?;
    Ok((text, start))
}

/// The header dictionary's entries: the token range of `'descr'`'s value,
/// the shape and whether the array is in Fortran order.
type Entries = (Option<(usize, usize)>, Vec<usize>, bool);

/// Reads the `'descr'`, `'fortran_order'` and `'shape'` entries of `toks`.
fn dict_entries(toks: &[String], fail: impl Fn(&str) -> NpyError) -> Result<Entries, NpyError> {
    let mut descr: Option<(usize, usize)> = None;
    let mut shape = Vec::new();
    let mut fortran = false;
    let mut i = 0;
    while i < toks.len() {
        match toks[i].as_str() {
            "'descr" => {
                let from = i + 2;
                let mut depth = 0i32;
                let mut j = from;
                while j < toks.len() {
                    match toks[j].as_str() {
                        "[" | "(" => depth += 1,
                        "]" | ")" => depth -= 1,
                        "," if depth == 0 => break,
                        _ => {}
                    }
                    j += 1;
                }
                descr = Some((from, j));
                i = j;
            }
            "'fortran_order" => {
                fortran = toks.get(i + 2).map(String::as_str) == Some("True");
                i += 3;
            }
            "'shape" => {
                let mut j = i + 3;
                while j < toks.len() && toks[j] != ")" {
                    if toks[j] != "," {
                        let v = toks[j]
                            .trim_end_matches('L')
                            .parse()
                            .map_err(|_| fail("bad shape"))?;
                        shape.push(v);
                    }
                    j += 1;
                }
                i = j;
            }
            _ => i += 1,
        }
    }
    Ok((descr, shape, fortran))
}

/// A dtype: named fields with their offsets (empty for a scalar), the scalar
/// (for a plain array) and the record size.
type Dtype = (Vec<(String, Scalar, usize)>, Option<Scalar>, usize);

/// Parses the tokens of `'descr'`'s value: one scalar, or a list of
/// `('name', '<type>')` fields.
fn parse_dtype(d: &[String], fail: impl Fn(&str) -> NpyError) -> Result<Dtype, NpyError> {
    if d.len() == 1 {
        let s =
            parse_scalar(d[0].trim_start_matches('\'')).ok_or_else(|| fail("unsupported dtype"))?;
        return Ok((Vec::new(), Some(s), s.size));
    }
    // [('x', '<i2'), ('y', '<i2'), ...]
    let mut fields = Vec::new();
    let mut offset = 0;
    let mut j = 0;
    while j < d.len() {
        if d[j] == "(" {
            let name = d.get(j + 1).map(|n| n.trim_start_matches('\'').to_string());
            let ty = d
                .get(j + 3)
                .and_then(|t| parse_scalar(t.trim_start_matches('\'')));
            let close = d.get(j + 4).map(String::as_str);
            match (name, ty, close) {
                (Some(n), Some(t), Some(")")) => {
                    fields.push((n, t, offset));
                    offset += t.size;
                    j += 5;
                    continue;
                }
                _ => return Err(fail("unsupported structured dtype")),
            }
        }
        j += 1;
    }
    if fields.is_empty() {
        return Err(fail("unsupported dtype"));
    }
    Ok((fields, None, offset))
}

fn parse_header(bytes: &[u8], path: &Path) -> Result<Header, NpyError> {
    let (text, start) = header_text(bytes, path)?;
    let fail = |what: &str| format_error(path, start, what);
    let toks = tokens(text);
    let (descr, shape, fortran) = dict_entries(&toks, fail)?;
    if fortran && shape.len() > 1 {
        return Err(fail("Fortran-order arrays are not supported"));
    }
    let Some((from, to)) = descr else {
        return Err(fail("header has no 'descr'"));
    };
    let (fields, scalar, record) = parse_dtype(toks.get(from..to).unwrap_or_default(), fail)?;
    Ok(Header {
        fields,
        scalar,
        record,
        shape,
        data_start: start + text.len(),
    })
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, NpyError> {
    std::fs::read(path).map_err(io_error(path))
}

/// Decodes events from `.npy` bytes (a 1-D structured array with `x, y, t, p`).
pub fn events_from_bytes(bytes: &[u8], path: &Path) -> Result<Vec<Event>, NpyError> {
    let h = parse_header(bytes, path)?;
    let fail = |offset: usize, what: String| format_error(path, offset, what);
    let field = |name: &str| {
        h.fields
            .iter()
            .find(|(n, s, _)| n == name && s.kind != b'f')
            .map(|(_, s, o)| (*s, *o))
            .ok_or_else(|| fail(0, format!("no integer field {name:?} in the dtype")))
    };
    let (fx, fy, ft, fp) = (field("x")?, field("y")?, field("t")?, field("p")?);
    if h.shape.len() != 1 {
        return Err(fail(
            0,
            format!("expected a 1-D array, shape is {:?}", h.shape),
        ));
    }
    let n = h.shape[0];
    let need = n
        .checked_mul(h.record)
        .and_then(|b| b.checked_add(h.data_start));
    if need.is_none_or(|need| need > bytes.len()) {
        return Err(fail(
            h.data_start,
            format!("{n} records of {} bytes do not fit in the file", h.record),
        ));
    }
    let body = &bytes[h.data_start..];
    let mut events = Vec::with_capacity(n);
    for (i, rec) in body.chunks_exact(h.record).take(n).enumerate() {
        let get = |(s, o): (Scalar, usize)| s.read_int(&rec[o..]);
        let bad = || fail(h.data_start + i * h.record, "value out of range".into());
        let coord = |f| get(f).and_then(|v| u16::try_from(v).ok()).ok_or_else(bad);
        let (x, y) = (coord(fx)?, coord(fy)?);
        let t = get(ft).ok_or_else(bad)?;
        let p = get(fp).ok_or_else(bad)? != 0;
        events.push(Event { t, x, y, p });
    }
    Ok(events)
}

/// Reads events from a sliced sample file.
pub fn read_events(path: &Path) -> Result<Vec<Event>, NpyError> {
    events_from_bytes(&read_bytes(path)?, path)
}

/// Writes an NPY 1.0 header for `descr` and `shape` into `out`.
fn write_header<W: Write>(out: &mut W, descr: &str, shape: &[usize]) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut dict = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': {shape_text}, }}");
    let total = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - total % 64) % 64));
    dict.push('\n');
    out.write_all(MAGIC)?;
    out.write_all(&[1, 0])?;
    out.write_all(&(dict.len() as u16).to_le_bytes())?;
    out.write_all(dict.as_bytes())
}

/// The dtype of sliced samples.
pub const EVENT_DESCR: &str = "[('x', '<i2'), ('y', '<i2'), ('t', '<i8'), ('p', '|b1')]";

/// Encodes events as `.npy` bytes (structured `x:int16, y:int16, t:int64, p:bool`).
pub fn events_to_bytes(events: &[Event]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + events.len() * 13);
    // Writing into a Vec cannot fail.
    let _ = write_header(&mut out, EVENT_DESCR, &[events.len()]);
    for e in events {
        out.extend_from_slice(&(e.x as i16).to_le_bytes());
        out.extend_from_slice(&(e.y as i16).to_le_bytes());
        out.extend_from_slice(&e.t.to_le_bytes());
        out.push(u8::from(e.p));
    }
    out
}

/// Writes a sliced sample file.
pub fn write_events(path: &Path, events: &[Event]) -> Result<(), NpyError> {
    std::fs::write(path, events_to_bytes(events)).map_err(io_error(path))
}

/// Writes a float32 tensor of the given shape (row-major).
pub fn write_f32(path: &Path, shape: &[usize], values: &[f32]) -> Result<(), NpyError> {
    let io = io_error(path);
    let mut out = Vec::with_capacity(128 + values.len() * 4);
    write_header(&mut out, "'<f4'", shape).map_err(&io)?;
    out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, out).map_err(io)
}

/// An unsigned integer type an `.npy` array can hold ([`uint_to_bytes`]).
pub trait NpyUint: Copy {
    /// Its dtype in the header, e.g. `'<u2'`.
    const DESCR: &'static str;
    /// Appends the value's little-endian bytes.
    fn put_le(self, out: &mut Vec<u8>);
}

impl NpyUint for u8 {
    const DESCR: &'static str = "'|u1'";
    fn put_le(self, out: &mut Vec<u8>) {
        out.push(self);
    }
}

impl NpyUint for u16 {
    const DESCR: &'static str = "'<u2'";
    fn put_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl NpyUint for u32 {
    const DESCR: &'static str = "'<u4'";
    fn put_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// Encodes an unsigned integer array (`uint8`, `uint16` or `uint32`) of the
/// given shape (row-major) as `.npy` bytes.
pub fn uint_to_bytes<T: NpyUint>(shape: &[usize], values: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + std::mem::size_of_val(values));
    // Writing into a Vec cannot fail.
    let _ = write_header(&mut out, T::DESCR, shape);
    for v in values {
        v.put_le(&mut out);
    }
    out
}

/// Reads a float32 tensor; returns its shape and values (row-major).
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>), NpyError> {
    let bytes = read_bytes(path)?;
    let h = parse_header(&bytes, path)?;
    let fail = |what: &str| format_error(path, h.data_start, what);
    let s = h.scalar.ok_or_else(|| fail("not a plain float32 array"))?;
    if s.kind != b'f' || s.size != 4 {
        return Err(fail("not a float32 array"));
    }
    let n = h.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let body = &bytes[h.data_start.min(bytes.len())..];
    let Some(n) = n.filter(|n| n.checked_mul(4).is_some_and(|b| b <= body.len())) else {
        return Err(fail("the data is shorter than the shape says"));
    };
    let values = body
        .chunks_exact(4)
        .take(n)
        .map(|c| {
            let b = [c[0], c[1], c[2], c[3]];
            if s.big_endian {
                f32::from_be_bytes(b)
            } else {
                f32::from_le_bytes(b)
            }
        })
        .collect();
    Ok((h.shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_arrays_have_numpy_headers_and_little_endian_bodies() {
        let bytes = uint_to_bytes(&[2, 1, 2], &[1u16, 2, 0x0304, 0xffff]);
        let h = parse_header(&bytes, Path::new("x.npy")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.shape, vec![2, 1, 2]);
        assert_eq!(
            h.scalar,
            Some(Scalar {
                kind: b'u',
                size: 2,
                big_endian: false
            })
        );
        assert_eq!(h.data_start % 64, 0, "the header is padded to 64 bytes");
        assert_eq!(&bytes[h.data_start..], &[1, 0, 2, 0, 4, 3, 0xff, 0xff]);
        let small = uint_to_bytes(&[3], &[7u8, 8, 9]);
        let h = parse_header(&small, Path::new("y.npy")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.scalar.map(|s| (s.kind, s.size)), Some((b'u', 1)));
        assert_eq!(&small[h.data_start..], &[7, 8, 9]);
        let wide = uint_to_bytes(&[1], &[0x0102_0304u32]);
        let h = parse_header(&wide, Path::new("z.npy")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.scalar.map(|s| (s.kind, s.size)), Some((b'u', 4)));
        assert_eq!(&wide[h.data_start..], &[4, 3, 2, 1]);
    }
}
