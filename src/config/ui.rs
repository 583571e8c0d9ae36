//! `[ui]` branding: the organisation's name, logo, colour and favicon. The image files are read
//! once at start, so a missing or oversized file stops the start instead of breaking pages later.

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{Deserializer, Error};

use crate::when::Zone;

/// What pages, mails and authenticator apps call the service when `ui.organisation` is empty.
pub const DEFAULT_NAME: &str = "sspr-bridge";

/// A logo or favicon larger than this is refused: pages load it on every visit, and a file this
/// big is more likely a photograph picked by mistake than a logo.
pub const MAX_IMAGE_BYTES: usize = 256 * 1024;

/// Text on buttons is white: a colour needs this contrast with it (WCAG 2.1 AA, 1.4.3).
const MIN_CONTRAST_WITH_WHITE: f64 = 4.5;

/// `ui.primary_colour`: buttons and links, checked to keep white text on it readable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Colour {
    pub red: u8,
    pub green: u8,
    pub blue: u8,
}

impl Colour {
    /// `#rrggbb`, nothing else (no names, no short form: one spelling to check).
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.trim().strip_prefix('#')?;
        if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
        Some(Self {
            red: byte(0)?,
            green: byte(2)?,
            blue: byte(4)?,
        })
    }

    /// Relative luminance as WCAG 2.1 defines it.
    fn luminance(self) -> f64 {
        let channel = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.039_28 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(self.red) + 0.7152 * channel(self.green) + 0.0722 * channel(self.blue)
    }

    /// The contrast ratio of white on this colour, 1 to 21.
    pub fn contrast_with_white(self) -> f64 {
        1.05 / (self.luminance() + 0.05)
    }
}

impl fmt::Display for Colour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.red, self.green, self.blue)
    }
}

pub fn primary_colour<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Colour>, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    let colour = Colour::parse(&text).ok_or_else(|| {
        D::Error::custom(format!(
            "{text:?} is not a colour written as #rrggbb, e.g. \"#0a58ca\""
        ))
    })?;
    let contrast = colour.contrast_with_white();
    if contrast < MIN_CONTRAST_WITH_WHITE {
        return Err(D::Error::custom(format!(
            "{colour} is too light: white text on it has a contrast of {contrast:.1}:1, and \
             buttons need at least {MIN_CONTRAST_WITH_WHITE}:1 to be readable (WCAG 2.1 AA); \
             choose a darker shade"
        )));
    }
    Ok(Some(colour))
}

/// `ui.timezone`: an IANA name, checked against the tz database at start.
pub fn timezone<'de, D: Deserializer<'de>>(d: D) -> Result<Zone, D::Error> {
    Zone::named(&String::deserialize(d)?).map_err(D::Error::custom)
}

/// A logo or favicon as read at start, served as is.
#[derive(Clone)]
pub struct Image {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    /// The file's extension, so its URL says what it is (`/static/logo.svg`).
    pub extension: &'static str,
}

impl fmt::Debug for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Image({}, {} bytes)",
            self.content_type,
            self.bytes.len()
        )
    }
}

/// Which images a key accepts.
#[derive(Clone, Copy)]
pub enum ImageKind {
    Logo,
    Favicon,
}

impl Image {
    /// Reads `path` and checks that its content is what its name says (PNG or SVG, and ICO for a
    /// favicon) and that it is not too big.
    pub fn read(path: &Path, kind: ImageKind) -> Result<Self, String> {
        let shown = path.display();
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let (content_type, extension) = match (extension.as_deref(), kind) {
            (Some("png"), _) => ("image/png", "png"),
            (Some("svg"), _) => ("image/svg+xml", "svg"),
            (Some("ico"), ImageKind::Favicon) => ("image/x-icon", "ico"),
            (_, ImageKind::Logo) => {
                return Err(format!("{shown} must be a .png or .svg file"));
            }
            (_, ImageKind::Favicon) => {
                return Err(format!("{shown} must be a .png, .svg or .ico file"));
            }
        };
        let size = std::fs::metadata(path)
            .map_err(|e| format!("cannot read {shown}: {e}"))?
            .len();
        if size > MAX_IMAGE_BYTES as u64 {
            return Err(format!(
                "{shown} is {} KiB; at most {} KiB is allowed: export a smaller image",
                size.div_ceil(1024),
                MAX_IMAGE_BYTES / 1024
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let looks_right = match extension {
            "png" => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "ico" => bytes.starts_with(&[0, 0, 1, 0]),
            _ => String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).contains("<svg"),
        };
        if !looks_right {
            return Err(format!(
                "{shown} does not contain a {} image",
                extension.to_ascii_uppercase()
            ));
        }
        Ok(Self {
            bytes,
            content_type,
            extension,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_six_hex_digits() {
        assert_eq!(
            Colour::parse("#0A58ca"),
            Some(Colour {
                red: 0x0a,
                green: 0x58,
                blue: 0xca
            })
        );
        for bad in ["0a58ca", "#0a58c", "#0a58cag", "#fff", "blue", "#0a58ca00"] {
            assert_eq!(Colour::parse(bad), None, "{bad}");
        }
        assert_eq!(Colour::parse("#0A58CA").unwrap().to_string(), "#0a58ca");
    }

    #[test]
    fn contrast_with_white_follows_wcag() {
        let ratio = |text| Colour::parse(text).unwrap().contrast_with_white();
        assert!((ratio("#000000") - 21.0).abs() < 0.01);
        assert!((ratio("#ffffff") - 1.0).abs() < 0.01);
        // The WCAG reference point: #767676 is the lightest grey that passes on white.
        assert!(ratio("#767676") >= 4.5);
        assert!(ratio("#777777") < 4.5);
    }

    #[test]
    fn images_must_be_what_their_name_says_and_small() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let png = write("logo.png", b"\x89PNG\r\n\x1a\nrest");
        let image = Image::read(&png, ImageKind::Logo).unwrap();
        assert_eq!((image.content_type, image.extension), ("image/png", "png"));
        let svg = write("logo.SVG", b"<?xml version=\"1.0\"?><svg></svg>");
        assert_eq!(
            Image::read(&svg, ImageKind::Logo).unwrap().content_type,
            "image/svg+xml"
        );
        let ico = write("favicon.ico", &[0, 0, 1, 0, 1]);
        assert!(Image::read(&ico, ImageKind::Logo).is_err());
        assert!(Image::read(&ico, ImageKind::Favicon).is_ok());
        let fake = write("fake.png", b"<svg></svg>");
        let err = Image::read(&fake, ImageKind::Logo).unwrap_err();
        assert!(err.contains("does not contain a PNG image"), "{err}");
        let big = write("big.png", &vec![0; MAX_IMAGE_BYTES + 1]);
        let err = Image::read(&big, ImageKind::Logo).unwrap_err();
        assert!(err.contains("257 KiB; at most 256 KiB"), "{err}");
        let err = Image::read(&dir.path().join("none.png"), ImageKind::Logo).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
    }
}
