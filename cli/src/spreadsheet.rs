//! Reading what spreadsheet programs save as "CSV".
//!
//! Excel and LibreOffice in Catalan, Spanish and Italian locales save
//! semicolon-separated files (the comma is their decimal separator), and
//! "CSV" from Excel is Windows-1252 unless the user picks "CSV UTF-8",
//! which adds a byte-order mark; "Unicode text" is UTF-16 with one. This
//! module turns any of those into text and finds the separator, so that
//! `enroll --csv` takes the file as the admin saved it. It does no IO: the
//! caller reads the bytes.

use std::borrow::Cow;

/// How a file's bytes were decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 with a byte-order mark ("CSV UTF-8").
    Utf8WithBom,
    /// UTF-8 without one.
    Utf8,
    /// UTF-16 (little or big endian) with a byte-order mark.
    Utf16,
    /// Not UTF-8: Windows-1252, what Western-European Excel writes.
    Windows1252,
}

/// The text of a spreadsheet export, and how it was decoded.
pub fn decode(bytes: &[u8]) -> (Cow<'_, str>, Encoding) {
    // encoding_rs implements the WHATWG decoders; its BOM sniffing takes
    // UTF-8 and UTF-16 marks before falling back to the guess given.
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, _) = encoding.decode_without_bom_handling(&bytes[bom..]);
        let kind = if encoding == encoding_rs::UTF_8 {
            Encoding::Utf8WithBom
        } else {
            Encoding::Utf16
        };
        return (text, kind);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => (Cow::Borrowed(text), Encoding::Utf8),
        Err(_) => {
            let (text, _) = encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes);
            (text, Encoding::Windows1252)
        }
    }
}

/// The field separator of `text`: whichever of `,` `;` and tab occurs most
/// in its first line outside quotes (a comma when none does).
pub fn delimiter(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or("");
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for c in header.bytes() {
        if c == b'"' {
            quoted = !quoted;
        } else if !quoted {
            for (separator, count) in &mut counts {
                if c == *separator {
                    *count += 1;
                }
            }
        }
    }
    // Ties go to the comma, then the semicolon (the array's order).
    counts
        .iter()
        .fold((b',', 0), |best, &(separator, count)| {
            if count > best.1 {
                (separator, count)
            } else {
                best
            }
        })
        .0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_encoding_a_spreadsheet_saves_decodes_to_the_same_text() {
        let text = "user;device;display_name\nnúria;núria-pc;Núria Puig\n";
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(text.as_bytes());
        let mut utf16le = vec![0xFF, 0xFE];
        utf16le.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        let mut utf16be = vec![0xFE, 0xFF];
        utf16be.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
        let cp1252: Vec<u8> = text
            .chars()
            .map(|c| if c == 'ú' { 0xFA } else { c as u8 })
            .collect();
        for (bytes, encoding) in [
            (text.as_bytes().to_vec(), Encoding::Utf8),
            (bom, Encoding::Utf8WithBom),
            (utf16le, Encoding::Utf16),
            (utf16be, Encoding::Utf16),
            (cp1252, Encoding::Windows1252),
        ] {
            let (decoded, found) = decode(&bytes);
            assert_eq!((decoded.as_ref(), found), (text, encoding));
        }
    }

    #[test]
    fn the_separator_is_found_in_the_header() {
        assert_eq!(delimiter("user;device;groups\n"), b';');
        assert_eq!(delimiter("user,device,groups\n"), b',');
        assert_eq!(delimiter("user\tdevice\n"), b'\t');
        assert_eq!(delimiter("\"a;b\",user,device\n"), b',');
        assert_eq!(delimiter("user\n"), b',');
    }
}
