//! A typed user id, and a group DN, as LDAP filter values (RFC 4515). For any input:
//!
//! - the escaped value holds no `*`, `(`, `)` or NUL, every `\` starts a two-hex-digit escape,
//!   and it is exactly the RFC 4515 escape of the input's bytes;
//! - it decodes back to the input (ldap3's `ldap_unescape` and the decoder below agree);
//! - the whole filter the code builds parses, by the small RFC 4515 checker below and by ldap3's
//!   own parser (whose result is the BER the DC receives), as one balanced filter of exactly the
//!   expected shape: the input adds no component, no wildcard and no bracket.
#![no_main]

use ldap3::asn1::{OctetString, Sequence, Tag, TagClass};
use libfuzzer_sys::fuzz_target;
use sspr_bridge::directory::codec::{enabled_users_filter, member_of_filter, user_filter};

/// Base filters an administrator might configure (`directory.user_filter`); the default first.
const BASES: [&str; 3] = [
    "(&(objectCategory=person)(objectClass=user))",
    "(objectClass=user)",
    "(!(cn=a\\2ab*))",
];
const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";
const DISABLED: &str = "(!(userAccountControl:1.2.840.113556.1.4.803:=2))";

fuzz_target!(|id: &str| {
    for base in BASES {
        for or_mail in [false, true] {
            check_user_filter(base, id, or_mail);
        }
        check_group_filters(base, id);
    }
});

fn check_user_filter(base: &str, id: &str, or_mail: bool) {
    let filter = user_filter(base, id, or_mail);
    let prefix = format!("(&{base}(|(sAMAccountName=");
    let rest = filter
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{filter:?} does not start with {prefix:?}"));
    let escaped = &rest[..rest.find(')').expect("the value is closed")];
    check_escaped(escaped, id);

    let mut attrs = vec!["sAMAccountName", "userPrincipalName"];
    if or_mail {
        attrs.push("mail");
    }
    let expected = Filter::And(vec![
        parse(base).expect("the base filters parse"),
        Filter::Or(attrs.iter().map(|attr| Filter::equal(attr, id)).collect()),
    ]);
    assert_eq!(parse(&filter), Ok(expected), "{filter:?}");

    let wire = ldap3::parse_filter(&filter)
        .unwrap_or_else(|()| panic!("ldap3 refuses {filter:?} built for {id:?}"));
    let expected = sequence(
        0,
        vec![
            ldap3::parse_filter(base).expect("the base filters parse"),
            sequence(1, attrs.iter().map(|attr| equal_tag(attr, id)).collect()),
        ],
    );
    assert_eq!(wire, expected, "{filter:?}");
}

fn check_group_filters(base: &str, dn: &str) {
    let filter = member_of_filter(dn);
    let prefix = format!("(memberOf:{IN_CHAIN}:=");
    let escaped = filter
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{filter:?} is not {prefix:?}…)"));
    check_escaped(escaped, dn);
    let member_of = Filter::Item {
        attr: format!("memberOf:{IN_CHAIN}:"),
        op: "=",
        value: dn.as_bytes().to_vec(),
        wildcard: false,
    };
    assert_eq!(parse(&filter), Ok(member_of), "{filter:?}");
    let wire = ldap3::parse_filter(&filter)
        .unwrap_or_else(|()| panic!("ldap3 refuses {filter:?} built for {dn:?}"));
    let member_of_tag = Tag::Sequence(Sequence {
        class: TagClass::Context,
        id: 9, // extensibleMatch
        inner: vec![
            context_string(1, IN_CHAIN.as_bytes()),
            context_string(2, b"memberOf"),
            context_string(3, dn.as_bytes()),
        ],
    });
    assert_eq!(wire, member_of_tag, "{filter:?}");

    let filter = enabled_users_filter(base, Some(dn));
    let Ok(Filter::And(parts)) = parse(&filter) else {
        panic!("{filter:?} is not one AND filter");
    };
    assert_eq!(parts.len(), 3, "{filter:?}");
    assert_eq!(Ok(&parts[0]), parse(base).as_ref());
    assert_eq!(Ok(&parts[1]), parse(DISABLED).as_ref());
    let wire = ldap3::parse_filter(&filter)
        .unwrap_or_else(|()| panic!("ldap3 refuses {filter:?} built for {dn:?}"));
    let expected = sequence(
        0,
        vec![
            ldap3::parse_filter(base).expect("the base filters parse"),
            ldap3::parse_filter(DISABLED).expect("static filter"),
            member_of_tag,
        ],
    );
    assert_eq!(wire, expected, "{filter:?}");
}

/// `escaped` is the RFC 4515 escape of `raw` and nothing else.
fn check_escaped(escaped: &str, raw: &str) {
    let bytes = escaped.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        assert!(
            !matches!(b, b'*' | b'(' | b')' | 0),
            "unescaped {:?} in {escaped:?}",
            b as char
        );
        if b == b'\\' {
            assert!(
                bytes.len() > i + 2 && bytes[i + 1..i + 3].iter().all(u8::is_ascii_hexdigit),
                "a lone backslash at {i} in {escaped:?}"
            );
        }
    }
    let reference: Vec<u8> = raw
        .bytes()
        .flat_map(|b| match b {
            b'*' | b'(' | b')' | b'\\' | 0 => format!("\\{b:02x}").into_bytes(),
            _ => vec![b],
        })
        .collect();
    assert_eq!(bytes, reference.as_slice(), "escape of {raw:?}");
    assert_eq!(
        unescape(bytes),
        Some(raw.as_bytes().to_vec()),
        "{escaped:?}"
    );
    assert_eq!(
        ldap3::ldap_unescape(escaped).as_deref().ok(),
        Some(raw),
        "ldap3 unescapes {escaped:?}"
    );
}

fn unescape(value: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if value[i] == b'\\' {
            let hex = std::str::from_utf8(value.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(value[i]);
            i += 1;
        }
    }
    Some(out)
}

fn sequence(id: u64, inner: Vec<Tag>) -> Tag {
    Tag::Sequence(Sequence {
        class: TagClass::Context,
        id,
        inner,
    })
}

fn context_string(id: u64, bytes: &[u8]) -> Tag {
    Tag::OctetString(OctetString {
        class: TagClass::Context,
        id,
        inner: bytes.to_vec(),
    })
}

/// equalityMatch: `SEQUENCE { attributeDesc, assertionValue }` under context tag 3.
fn equal_tag(attr: &str, value: &str) -> Tag {
    sequence(
        3,
        [attr, value]
            .iter()
            .map(|s| {
                Tag::OctetString(OctetString {
                    inner: s.as_bytes().to_vec(),
                    ..Default::default()
                })
            })
            .collect(),
    )
}

/// A filter as RFC 4515 section 3 writes it, values decoded.
#[derive(Debug, PartialEq)]
enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    /// `attr` keeps an extensible match's `:rule:` part; `wildcard` is an unescaped `*`
    /// (presence or substrings), which no value built from user input may have.
    Item {
        attr: String,
        op: &'static str,
        value: Vec<u8>,
        wildcard: bool,
    },
}

impl Filter {
    fn equal(attr: &str, value: &str) -> Filter {
        Filter::Item {
            attr: attr.to_owned(),
            op: "=",
            value: value.as_bytes().to_vec(),
            wildcard: false,
        }
    }
}

/// One balanced filter and nothing after it.
fn parse(text: &str) -> Result<Filter, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
    };
    let filter = p.filter()?;
    if p.pos != p.s.len() {
        return Err(format!("input after the filter at {}", p.pos));
    }
    Ok(filter)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> Result<(), String> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at {}", char::from(b), self.pos))
        }
    }

    fn filter(&mut self) -> Result<Filter, String> {
        self.eat(b'(')?;
        let filter = match self.peek() {
            Some(b'&') => {
                self.pos += 1;
                Filter::And(self.list()?)
            }
            Some(b'|') => {
                self.pos += 1;
                Filter::Or(self.list()?)
            }
            Some(b'!') => {
                self.pos += 1;
                Filter::Not(Box::new(self.filter()?))
            }
            _ => self.item()?,
        };
        self.eat(b')')?;
        Ok(filter)
    }

    /// `filterlist = 1*filter`
    fn list(&mut self) -> Result<Vec<Filter>, String> {
        let mut filters = Vec::new();
        while self.peek() == Some(b'(') {
            filters.push(self.filter()?);
        }
        if filters.is_empty() {
            return Err(format!("empty filter list at {}", self.pos));
        }
        Ok(filters)
    }

    fn item(&mut self) -> Result<Filter, String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || b"-;.:".contains(&c))
        {
            self.pos += 1;
        }
        let attr = String::from_utf8(self.s[start..self.pos].to_vec()).expect("ASCII");
        if attr.is_empty() {
            return Err(format!("no attribute at {start}"));
        }
        let op = match (self.peek(), self.s.get(self.pos + 1)) {
            (Some(b'='), _) => "=",
            (Some(b'~'), Some(b'=')) => "~=",
            (Some(b'>'), Some(b'=')) => ">=",
            (Some(b'<'), Some(b'=')) => "<=",
            _ => return Err(format!("no operator at {}", self.pos)),
        };
        self.pos += op.len();
        let mut value = Vec::new();
        let mut wildcard = false;
        loop {
            match self.peek() {
                None => return Err("unterminated value".to_owned()),
                Some(b')') => break,
                Some(b'(') | Some(0) => return Err(format!("bad value byte at {}", self.pos)),
                Some(b'*') => {
                    wildcard = true;
                    self.pos += 1;
                }
                Some(b'\\') => {
                    let hex = self
                        .s
                        .get(self.pos + 1..self.pos + 3)
                        .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                        .ok_or_else(|| format!("bad escape at {}", self.pos))?;
                    let hex = std::str::from_utf8(hex).expect("hex digits");
                    value.push(u8::from_str_radix(hex, 16).expect("hex digits"));
                    self.pos += 3;
                }
                Some(b) => {
                    value.push(b);
                    self.pos += 1;
                }
            }
        }
        Ok(Filter::Item {
            attr,
            op,
            value,
            wildcard,
        })
    }
}
