//! The stream description of an AEDAT 4 file header: an XML document
//! `<dv><node name="outInfo"><node name="ID"><attr key="typeIdentifier">EVTS</attr>
//! <node name="info"><attr key="sizeX">W</attr><attr key="sizeY">H</attr>…`,
//! read the way the `aedat` crate reads it (which it does only from a file).

use std::path::Path;

use roxmltree::{Document, Node};

use super::ReadError;
use crate::events::SensorSize;

/// The child element of `node` called `tag` whose `attr` is `value`.
fn child<'a, 'i>(node: Node<'a, 'i>, tag: &str, attr: &str, value: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|n| n.is_element() && n.has_tag_name(tag) && n.attribute(attr) == Some(value))
}

/// The text of the `<attr key="key">` child of `node`.
fn attr_text<'a>(node: Node<'a, '_>, key: &str) -> Option<&'a str> {
    child(node, "attr", "key", key).and_then(|n| n.text())
}

/// The id and sensor size of the event stream (`EVTS`) with the lowest id.
pub(super) fn event_stream(
    description: &str,
    offset: u64,
    path: &Path,
) -> Result<(u32, SensorSize), ReadError> {
    // The description sits right after the file's magic line, at `offset`.
    let bad = |what| ReadError::bad_header(path, offset, what);
    let doc = Document::parse(description)
        .map_err(|_| bad("the stream description is not well-formed XML"))?;
    let dv = doc
        .root()
        .first_child()
        .filter(|n| n.has_tag_name("dv"))
        .ok_or_else(|| bad("the stream description has no dv node"))?;
    let out = child(dv, "node", "name", "outInfo")
        .ok_or_else(|| bad("the description names no output streams"))?;
    let mut best: Option<(u32, SensorSize)> = None;
    for stream in out
        .children()
        .filter(|n| n.is_element() && n.has_tag_name("node"))
    {
        let id = stream
            .attribute("name")
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| bad("a stream of the description has no numeric id"))?;
        if attr_text(stream, "typeIdentifier") != Some("EVTS") {
            continue;
        }
        let info = child(stream, "node", "name", "info")
            .ok_or_else(|| bad("the event stream has no info node"))?;
        let size = |key| attr_text(info, key).and_then(|t| t.trim().parse::<u16>().ok());
        let (Some(width), Some(height)) = (size("sizeX"), size("sizeY")) else {
            return Err(bad("the event stream has no usable sizeX and sizeY"));
        };
        if best.is_none_or(|(b, _)| id < b) {
            best = Some((id, SensorSize { width, height }));
        }
    }
    best.ok_or_else(|| bad("the file has no event stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_event_stream_is_found_and_bad_descriptions_are_named() {
        let p = Path::new("x.aedat4");
        let doc = |streams: &str| format!("<dv><node name=\"outInfo\">{streams}</node></dv>");
        let evts = |id: u32, w: u16| {
            format!(
                "<node name=\"{id}\"><attr key=\"typeIdentifier\">EVTS</attr>\
                 <node name=\"info\"><attr key=\"sizeX\">{w}</attr><attr key=\"sizeY\">60</attr></node></node>"
            )
        };
        let frame = "<node name=\"0\"><attr key=\"typeIdentifier\">FRME</attr></node>";
        let text = doc(&format!("{}{frame}{}", evts(3, 128), evts(1, 346)));
        let (id, size) = event_stream(&text, 14, p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((id, size.width, size.height), (1, 346, 60));
        for (text, what) in [
            ("<dv><node></dv>".to_owned(), "not well-formed"),
            ("<x/>".to_owned(), "no dv node"),
            ("<dv/>".to_owned(), "no output streams"),
            (doc(frame), "no event stream"),
            (doc(&evts(1, 0).replace("60", "-1")), "sizeX and sizeY"),
            (doc("<node name=\"a\"/>"), "numeric id"),
        ] {
            let err = event_stream(&text, 14, p)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(what) && err.contains("x.aedat4"),
                "{text}: {err}"
            );
        }
    }
}
