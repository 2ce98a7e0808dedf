//! The names an X.509 certificate gives its subject: the common names (CN)
//! of its subject and the DNS names of its subjectAltName extension. With
//! client certificates required (`--tls-client-ca`), a certificate whose
//! name is a named worker's stands for that worker (see
//! [`crate::credentials`]).
//!
//! A small DER reader of the few fields this needs, with every length
//! checked: a certificate it cannot read yields no names (the TLS stack has
//! already verified its signature; this only reads who it names).

/// The DER tag of a SEQUENCE.
const SEQUENCE: u8 = 0x30;
/// The DER tag of a SET.
const SET: u8 = 0x31;
/// The DER tag of an OBJECT IDENTIFIER.
const OID: u8 = 0x06;
/// The DER tag of an OCTET STRING.
const OCTET_STRING: u8 = 0x04;
/// The tag of `[0] EXPLICIT` (the certificate's version).
const VERSION_TAG: u8 = 0xa0;
/// The tag of `[3] EXPLICIT` (the certificate's extensions).
const EXTENSIONS_TAG: u8 = 0xa3;
/// The tag of a GeneralName's `dNSName [2] IMPLICIT IA5String`.
const DNS_NAME_TAG: u8 = 0x82;
/// The OID 2.5.4.3 (id-at-commonName), as DER content.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// The OID 2.5.29.17 (id-ce-subjectAltName), as DER content.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
/// The most names read from one certificate.
const MAX_NAMES: usize = 64;

/// One DER element: its tag and its content.
struct Element<'a> {
    tag: u8,
    content: &'a [u8],
}

/// Reads the element at the start of `input`; returns it and what follows.
/// `None` when the encoding is not the short DER this reader knows.
fn element(input: &[u8]) -> Option<(Element<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    Some((Element { tag, content }, rest))
}

/// The elements of a constructed element's content, in order (stops at the
/// first it cannot read).
fn children(mut content: &[u8]) -> impl Iterator<Item = Element<'_>> {
    std::iter::from_fn(move || {
        let (e, rest) = element(content)?;
        content = rest;
        Some(e)
    })
}

/// The text of a string element (UTF8String, PrintableString, IA5String,
/// ...), when it is UTF-8.
fn text(content: &[u8]) -> Option<String> {
    std::str::from_utf8(content).ok().map(str::to_owned)
}

/// The common names of a Name (SEQUENCE OF SET OF AttributeTypeAndValue).
fn common_names(name: &[u8], out: &mut Vec<String>) {
    for rdn in children(name).filter(|e| e.tag == SET) {
        for atv in children(rdn.content).filter(|e| e.tag == SEQUENCE) {
            let mut parts = children(atv.content);
            if let (Some(oid), Some(value)) = (parts.next(), parts.next())
                && oid.tag == OID
                && oid.content == COMMON_NAME
                && let Some(t) = text(value.content)
            {
                out.push(t);
            }
        }
    }
}

/// The DNS names of the subjectAltName among `extensions` (the content of
/// the `[3]` element: one SEQUENCE OF Extension).
fn dns_names(extensions: &[u8], out: &mut Vec<String>) {
    let Some(list) = children(extensions).find(|e| e.tag == SEQUENCE) else {
        return;
    };
    for ext in children(list.content).filter(|e| e.tag == SEQUENCE) {
        let mut parts = children(ext.content);
        let Some(oid) = parts.next() else { continue };
        if oid.tag != OID || oid.content != SUBJECT_ALT_NAME {
            continue;
        }
        // An optional `critical` BOOLEAN comes before the OCTET STRING.
        let Some(value) = parts.find(|e| e.tag == OCTET_STRING) else {
            continue;
        };
        let Some((general_names, _)) = element(value.content) else {
            continue;
        };
        for n in children(general_names.content).filter(|e| e.tag == DNS_NAME_TAG) {
            out.extend(text(n.content));
        }
    }
}

/// The names `der` (one DER certificate) gives its subject: the DNS names of
/// its subjectAltName, then its subject's common names; empty when it
/// cannot be read.
pub fn subject_names(der: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let Some((cert, _)) = element(der).filter(|(e, _)| e.tag == SEQUENCE) else {
        return out;
    };
    let Some(tbs) = children(cert.content).next().filter(|e| e.tag == SEQUENCE) else {
        return out;
    };
    let mut fields = children(tbs.content).peekable();
    if fields.peek().is_some_and(|e| e.tag == VERSION_TAG) {
        fields.next();
    }
    // serialNumber, signature, issuer, validity, then subject.
    let Some(subject) = fields.nth(4).filter(|e| e.tag == SEQUENCE) else {
        return out;
    };
    // subjectPublicKeyInfo, the optional unique ids, then the extensions.
    if let Some(ext) = fields.find(|e| e.tag == EXTENSIONS_TAG) {
        dns_names(ext.content, &mut out);
    }
    common_names(subject.content, &mut out);
    out.truncate(MAX_NAMES);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der_of(fixture: &str) -> Vec<u8> {
        use tokio_rustls::rustls::pki_types::CertificateDer;
        use tokio_rustls::rustls::pki_types::pem::PemObject as _;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(fixture);
        match CertificateDer::from_pem_file(&path) {
            Ok(c) => c.to_vec(),
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }

    #[test]
    fn names_of_the_test_certificates() {
        assert_eq!(subject_names(&der_of("client.pem")), ["client"]);
        assert_eq!(
            subject_names(&der_of("server.pem")),
            ["localhost", "server"]
        );
        assert_eq!(subject_names(&der_of("ca.pem")), ["spikecv test CA"]);
    }

    #[test]
    fn broken_certificates_name_nobody() {
        let good = der_of("server.pem");
        for cut in [0, 1, 2, 10, good.len() / 2, good.len() - 1] {
            assert!(subject_names(&good[..cut]).is_empty(), "cut at {cut}");
        }
        assert!(subject_names(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_empty());
        assert!(subject_names(b"not a certificate").is_empty());
    }
}
