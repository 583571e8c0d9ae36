//! The `[ui]` lines: what the pages will show. A logo or favicon that is missing, of the wrong
//! type or over the limit, a colour too light for white text and an unknown time zone already
//! stop the configuration from loading; these lines say what was found, and warn about what
//! works but costs the pages.

use std::time::SystemTime;

use super::{Line, Status, line};
use crate::config::{Image, UiConfig};

/// A logo or favicon above this works but is loaded on every page view; exported logos are
/// usually a few KiB.
const LARGE_IMAGE_BYTES: usize = 64 * 1024;

/// A colour with white text below this contrast passes AA but not AAA (WCAG 2.1, 1.4.6).
const AAA_CONTRAST: f64 = 7.0;

pub(super) fn lines(ui: &UiConfig, now: SystemTime) -> Vec<Line> {
    vec![
        image("ui.logo", ui.logo_image.as_ref()),
        image("ui.favicon", ui.favicon_image.as_ref()),
        colour(ui),
        zone(ui, now),
    ]
}

fn image(key: &str, image: Option<&Image>) -> Line {
    let Some(image) = image else {
        return line(Status::Ok, "branding", format!("{key}: none"));
    };
    let kib = image.bytes.len().div_ceil(1024);
    if image.bytes.len() > LARGE_IMAGE_BYTES {
        return line(
            Status::Warn,
            "branding",
            format!(
                "{key}: {}, {kib} KiB: every page loads it; a logo of a few KiB (SVG, or a \
                 smaller PNG) loads faster on phones",
                image.content_type
            ),
        );
    }
    line(
        Status::Ok,
        "branding",
        format!("{key}: {}, {kib} KiB", image.content_type),
    )
}

fn colour(ui: &UiConfig) -> Line {
    let Some(colour) = ui.primary_colour else {
        return line(
            Status::Ok,
            "branding",
            "ui.primary_colour: the built-in blue",
        );
    };
    let contrast = colour.contrast_with_white();
    let detail = format!("ui.primary_colour: {colour}, white text on it {contrast:.1}:1");
    if contrast < AAA_CONTRAST {
        return line(
            Status::Warn,
            "branding",
            format!(
                "{detail}: readable (WCAG AA, 4.5:1) but below {AAA_CONTRAST}:1; a darker \
                 shade reads better in sunlight and for poor eyesight"
            ),
        );
    }
    line(Status::Ok, "branding", detail)
}

fn zone(ui: &UiConfig, now: SystemTime) -> Line {
    let zone = &ui.timezone;
    let local = zone.local(now).map_or_else(String::new, |l| {
        format!("; it is {} {} there now", l.time, l.zone)
    });
    line(
        Status::Ok,
        "branding",
        format!("ui.timezone: {}{local}", zone.name()),
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::config::{Colour, Zone};

    fn ui(colour: Option<&str>, zone: &str) -> UiConfig {
        let mut ui = UiConfig::default();
        ui.primary_colour = colour.and_then(Colour::parse);
        ui.timezone = Zone::named(zone).unwrap();
        ui
    }

    fn png(bytes: usize) -> Image {
        Image {
            bytes: vec![0; bytes],
            content_type: "image/png",
            extension: "png",
        }
    }

    #[test]
    fn each_key_gets_a_line_and_what_costs_the_pages_a_warning() {
        let winter = UNIX_EPOCH + Duration::from_secs(1_796_562_300);
        let lines = lines(&ui(Some("#1f4e79"), "Europe/Amsterdam"), winter);
        let shown: Vec<String> = lines.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "OK    branding  ui.logo: none",
                "OK    branding  ui.favicon: none",
                "OK    branding  ui.primary_colour: #1f4e79, white text on it 8.7:1",
                "OK    branding  ui.timezone: Europe/Amsterdam; it is 14:05 CET there now",
            ]
        );

        let light = colour(&ui(Some("#0a58ca"), ""));
        assert_eq!(light.status, Status::Warn, "{light}");
        assert!(light.detail.contains("below 7:1"), "{light}");

        assert_eq!(image("ui.logo", Some(&png(3000))).status, Status::Ok);
        let big = image("ui.logo", Some(&png(LARGE_IMAGE_BYTES + 1)));
        assert_eq!(big.status, Status::Warn, "{big}");
        assert!(big.detail.contains("image/png, 65 KiB"), "{big}");
    }
}
