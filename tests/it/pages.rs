//! The server-rendered pages end to end, as a browser without JavaScript uses them: a cookie jar,
//! forms submitted with their hidden fields (the CSRF token among them), against the real Samba
//! DC and SMTP server.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use sspr_bridge::domain::totp;

use crate::client::{Answer, TestApp, test_app};
use crate::harness::{TestUser, bind, create_user};
use crate::mail::{smtp_section, unique_address, wait_for_mail};
use crate::selfservice::{decode_base32, settle_totp_step};

const LICENSED: &str = "[licence]\nazure_ad_premium = true\n";

pub async fn app(extra: &str) -> TestApp {
    test_app(&format!("{LICENSED}{}\n{extra}", smtp_section())).await
}

/// One form of a page: where it posts and the values its inputs carry.
#[derive(Debug)]
struct Form {
    action: String,
    fields: Vec<(String, String)>,
    /// Names of the hidden inputs.
    hidden: Vec<String>,
}

/// Undoes the HTML escaping of attribute values and text (minijinja escapes `/` too).
pub fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of attribute `name` in a tag's source.
fn attr(tag: &str, name: &str) -> Option<String> {
    // The first attribute follows the tag name, which callers may have cut off.
    let tag = format!(" {tag}");
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(unescape(&tag[start..start + len]))
}

/// Every `attr="…"` value in `html`, for `href`, `action` and `src`.
fn urls_in(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for name in ["href", "action", "src"] {
        let needle = format!(" {name}=\"");
        let mut rest = html;
        while let Some(at) = rest.find(&needle) {
            rest = &rest[at + needle.len()..];
            let end = rest.find('"').unwrap_or(rest.len());
            urls.push(unescape(&rest[..end]));
        }
    }
    urls
}

fn forms(html: &str) -> Vec<Form> {
    html.split("<form ")
        .skip(1)
        .map(|chunk| {
            let body = &chunk[..chunk.find("</form>").expect("closed form")];
            let action = attr(&body[..body.find('>').unwrap()], "action").expect("form action");
            let mut fields = Vec::new();
            let mut hidden = Vec::new();
            for input in body.split("<input ").skip(1) {
                let tag = &input[..input.find('>').unwrap()];
                let Some(name) = attr(tag, "name") else {
                    continue;
                };
                if attr(tag, "type").as_deref() == Some("hidden") {
                    hidden.push(name.clone());
                }
                fields.push((name, attr(tag, "value").unwrap_or_default()));
            }
            Form {
                action,
                fields,
                hidden,
            }
        })
        .collect()
}

/// The hidden `csrf` value of the form of `page` that posts to `action`.
pub fn csrf_field(page: &Answer, action: &str) -> String {
    forms(&page.body)
        .into_iter()
        .find(|f| f.action == action)
        .and_then(|f| f.fields.into_iter().find(|(name, _)| name == "csrf"))
        .unwrap_or_else(|| panic!("no form for {action} with a token in {}", page.body))
        .1
}

/// The text of the element with `id`.
pub fn text_of(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}: {html}"));
    let start = at + html[at..].find('>').unwrap() + 1;
    let end = start + html[start..].find('<').unwrap();
    unescape(&html[start..end])
}

/// A browser: keeps cookies, submits forms, and remembers every URL it saw.
pub struct Browser<'a> {
    app: &'a TestApp,
    pub jar: BTreeMap<String, String>,
    pub accept_language: Option<&'static str>,
    /// Request URLs, Location headers and link/form/image URLs of every page.
    pub seen_urls: Vec<String>,
    /// Every `Set-Cookie` header received.
    pub set_cookies: Vec<String>,
    /// Where the last submitted form redirected with `303 See Other`, if it did.
    pub redirected: Option<String>,
    /// The path and body of the last POST, which a Reload of its answer sends again.
    last_post: Option<(String, String)>,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            jar: BTreeMap::new(),
            accept_language: None,
            seen_urls: Vec::new(),
            set_cookies: Vec::new(),
            redirected: None,
            last_post: None,
        }
    }

    async fn send(&mut self, method: &str, path: &str, form: Option<String>) -> Answer {
        if let Some(body) = &form {
            self.last_post = Some((path.to_owned(), body.clone()));
        }
        let mut request = Request::builder().method(method).uri(path);
        if !self.jar.is_empty() {
            let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            request = request.header(header::COOKIE, cookies.join("; "));
        }
        if let Some(language) = self.accept_language {
            request = request.header(header::ACCEPT_LANGUAGE, language);
        }
        let request = match form {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body)),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let answer = self.app.send(request).await;
        for cookie in answer.headers.get_all(header::SET_COOKIE) {
            let cookie = cookie.to_str().unwrap().to_owned();
            let (pair, attributes) = cookie.split_once(';').unwrap_or((&cookie, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), value.to_owned());
            }
            self.set_cookies.push(cookie);
        }
        self.seen_urls.push(path.to_owned());
        if let Some(location) = answer.headers.get(header::LOCATION) {
            self.seen_urls.push(location.to_str().unwrap().to_owned());
        }
        self.seen_urls.extend(urls_in(&answer.body));
        assert_labelled(&answer.body);
        answer
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, None).await
    }

    /// Posts exactly `fields`, as a forged or hand-made request would.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send("POST", path, Some(body)).await
    }

    /// Submits the form of `page` that posts to `action` (the first whose hidden values agree
    /// with `fields`), with its values and `fields` typed in.
    pub async fn submit(&mut self, page: &Answer, action: &str, fields: &[(&str, &str)]) -> Answer {
        let all = forms(&page.body);
        let form = all
            .iter()
            .filter(|f| f.action == action)
            .find(|f| {
                fields.iter().all(|(k, v)| {
                    f.fields
                        .iter()
                        .all(|(name, value)| name != k || !f.hidden.contains(name) || value == v)
                })
            })
            .unwrap_or_else(|| panic!("no form for {action} in {all:?}\n{}", page.body));
        let mut values: Vec<(String, String)> = form
            .fields
            .iter()
            .filter(|(name, _)| !fields.iter().any(|(k, _)| k == name))
            .cloned()
            .collect();
        values.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        assert!(
            values.iter().any(|(k, v)| k == "csrf" && !v.is_empty()),
            "{form:?}"
        );
        let pairs: Vec<(&str, &str)> = values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let answer = self.post(action, &pairs).await;
        self.redirected = None;
        self.follow(answer).await
    }

    /// Reload of a POST's answer, confirmed: the same form sent again (not followed).
    pub async fn post_again(&mut self) -> Answer {
        let (path, body) = self.last_post.clone().expect("a form was posted");
        self.send("POST", &path, Some(body)).await
    }

    /// Follows `303 See Other` with a GET, as a browser does; the first Location goes to
    /// `redirected`.
    pub async fn follow(&mut self, mut answer: Answer) -> Answer {
        for _ in 0..5 {
            if answer.status != StatusCode::SEE_OTHER {
                return answer;
            }
            assert!(answer.body.is_empty(), "{}", answer.body);
            let location = answer.headers[header::LOCATION]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(location.starts_with('/'), "{location}");
            self.redirected.get_or_insert_with(|| location.clone());
            answer = self.get(&location).await;
        }
        panic!("a redirect loop");
    }

    /// Asserts that a flow id or session token never showed up in a URL, nor anywhere in a page.
    pub fn assert_bearers_stay_in_cookies(&self, bearers: &[&str], pages: &[&Answer]) {
        for bearer in bearers {
            assert!(bearer.len() >= 40, "{bearer}");
            for url in &self.seen_urls {
                assert!(!url.contains(bearer), "bearer secret in URL {url}");
            }
            for page in pages {
                assert!(!page.body.contains(bearer), "bearer secret in a page");
            }
        }
    }
}

/// Every visible input has a `<label for>`.
fn assert_labelled(html: &str) {
    for input in html.split("<input ").skip(1) {
        let tag = &input[..input.find('>').unwrap()];
        if attr(tag, "type").as_deref() == Some("hidden") {
            continue;
        }
        let id = attr(tag, "id").unwrap_or_else(|| panic!("input without id: {tag}"));
        assert!(
            html.contains(&format!("<label for=\"{id}\">")),
            "no label for #{id}"
        );
    }
}

pub fn assert_page(answer: &Answer, status: StatusCode, text: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert!(
        unescape(&answer.body).contains(text),
        "no {text:?} in {}",
        answer.body
    );
}

/// The text of the page's alert (`role="alert"`).
pub fn alert(answer: &Answer) -> String {
    let at = answer
        .body
        .find("role=\"alert\"")
        .unwrap_or_else(|| panic!("no alert in {}", answer.body));
    let end = at + answer.body[at..].find("</div>").unwrap();
    unescape(&answer.body[at..end])
}

/// Signs in on `/register`; returns the overview page.
pub async fn sign_in(browser: &mut Browser<'_>, user: &TestUser) -> Answer {
    let form = browser.get("/register").await;
    assert_page(&form, StatusCode::OK, "autocomplete=\"current-password\"");
    let overview = browser
        .submit(
            &form,
            "/register",
            &[("username", &user.sam), ("password", &user.password)],
        )
        .await;
    assert_page(&overview, StatusCode::OK, "Your verification methods");
    overview
}

/// Adds an authenticator app from the overview, confirming with the code of the previous time
/// step (so the current step stays free for a reset). Returns the raw secret.
pub async fn register_totp(browser: &mut Browser<'_>, overview: &Answer) -> Vec<u8> {
    register_named_totp(browser, overview, "").await
}

/// [`register_totp`], naming the app `name` (empty: unnamed).
async fn register_named_totp(browser: &mut Browser<'_>, overview: &Answer, name: &str) -> Vec<u8> {
    let setup = browser
        .submit(overview, "/register/totp", &[("name", name)])
        .await;
    assert_page(&setup, StatusCode::OK, "src=\"data:image/svg+xml;base64,");
    let img = attr_of_tag(&setup.body, "class=\"qr\"", "src");
    let svg = base64::engine::general_purpose::STANDARD
        .decode(img.strip_prefix("data:image/svg+xml;base64,").unwrap())
        .unwrap();
    assert!(String::from_utf8(svg).unwrap().contains("<svg"));
    assert!(
        setup.body.contains("href=\"otpauth:&#x2f;&#x2f;totp&#x2f;"),
        "{}",
        setup.body
    );

    let grouped = text_of(&setup.body, "totp-secret");
    assert!(
        grouped.split(' ').all(|g| (1..=4).contains(&g.len())),
        "{grouped}"
    );
    let secret = decode_base32(&grouped.replace(' ', ""));
    assert_eq!(secret.len(), 20);
    assert_page(&setup, StatusCode::OK, "autocomplete=\"one-time-code\"");
    assert_page(&setup, StatusCode::OK, "inputmode=\"numeric\"");

    let now = settle_totp_step().await;
    let code = totp::code_at(&secret, now - totp::STEP_SECS);
    let done = browser
        .submit(&setup, "/register/totp/confirm", &[("code", &code)])
        .await;
    assert_page(&done, StatusCode::OK, "Your authenticator app is set up.");
    assert!(done.body.contains("role=\"status\""));
    secret
}

/// The items of the password step's list of rules.
fn password_rules(page: &Answer) -> Vec<String> {
    let at = page
        .body
        .find("id=\"password-rules\"")
        .unwrap_or_else(|| panic!("no rules listed: {}", page.body));
    let list = &page.body[at..at + page.body[at..].find("</ul>").unwrap()];
    list.split("<li")
        .skip(1)
        .map(|item| {
            // The rule's own words: the text between the tags, without the state shown after it.
            let item = &item[item.find('>').unwrap() + 1..item.find("</li>").unwrap()];
            let words: Vec<&str> = item
                .split('<')
                .filter_map(|piece| piece.split_once('>').map(|(_, text)| text.trim()))
                .filter(|text| !text.is_empty())
                .collect();
            unescape(words.first().copied().unwrap_or_default())
        })
        .collect()
}

/// The attribute `name` of the first tag that contains `marker`.
pub fn attr_of_tag(html: &str, marker: &str, name: &str) -> String {
    let at = html.find(marker).unwrap_or_else(|| panic!("no {marker}"));
    let start = html[..at].rfind('<').unwrap();
    let end = at + html[at..].find('>').unwrap();
    attr(&html[start..end], name).unwrap()
}

/// Starts a reset or unlock (`here`) for `login`; returns the verification page.
pub async fn start(browser: &mut Browser<'_>, here: &str, login: &str) -> Answer {
    let form = browser.get(here).await;
    assert_page(&form, StatusCode::OK, "autocomplete=\"username\"");
    let verify = browser.submit(&form, here, &[("username", login)]).await;
    assert_page(&verify, StatusCode::OK, "Prove who you are");
    verify
}

async fn verify_totp(
    browser: &mut Browser<'_>,
    page: &Answer,
    here: &str,
    secret: &[u8],
) -> Answer {
    let now = settle_totp_step().await;
    let code = totp::code_at(secret, now);
    browser
        .submit(
            page,
            &format!("{here}/verify"),
            &[("method", "totp"), ("code", &code)],
        )
        .await
}

/// A second app, named, is listed by its name beside the first and removed on its own.
#[tokio::test]
async fn a_second_named_app_is_listed_and_removed_alone() {
    let app = app("").await;
    let user = create_user("pga").await;
    let mut browser = Browser::new(&app);
    let overview = sign_in(&mut browser, &user).await;
    assert_labelled(&overview.body);
    register_totp(&mut browser, &overview).await;
    let overview = browser.get("/register").await;
    register_named_totp(&mut browser, &overview, "Tablet <home>").await;
    let overview = browser.get("/register").await;
    assert_page(&overview, StatusCode::OK, "Tablet <home>");
    assert!(!overview.body.contains("Tablet <home>"), "escaped");
    let links: Vec<&str> = overview
        .body
        .split("href=\"/register/remove/totp/")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert_eq!(links.len(), 2, "{}", overview.body);

    let path = format!("/register/remove/totp/{}", links[1]);
    let confirm = browser.get(&path).await;
    assert_page(
        &confirm,
        StatusCode::OK,
        "Do you want to remove this authenticator app?",
    );
    assert_page(&confirm, StatusCode::OK, "Tablet <home>");
    let done = browser.submit(&confirm, &path, &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(
        !unescape(&done.body).contains("Tablet <home>"),
        "{}",
        done.body
    );
    assert!(
        done.body
            .contains(&format!("/register/remove/totp/{}", links[0]))
    );
    // Another user's (or a made-up) id leads back to the overview and removes nothing.
    let unknown = browser.get("/register/remove/totp/not-an-app").await;
    assert_eq!(unknown.status, StatusCode::SEE_OTHER);
    assert_eq!(unknown.headers[header::LOCATION], "/register");
    let overview = browser.get("/register").await;
    assert!(overview.body.contains(links[0]), "{}", overview.body);
}

#[tokio::test]
async fn totp_registration_then_reset_through_the_pages() {
    let app = app("").await;
    let user = create_user("pgt").await;
    let mut browser = Browser::new(&app);
    let overview = sign_in(&mut browser, &user).await;
    assert_page(&overview, StatusCode::OK, "Not set up.");
    assert_page(&overview, StatusCode::OK, "No address set up.");
    let session_cookie = browser
        .set_cookies
        .iter()
        .find(|c| c.starts_with("sspr_session="))
        .expect("session cookie")
        .clone();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session_cookie.contains(attribute), "{session_cookie}");
    }
    assert!(
        !session_cookie.contains("Secure"),
        "public_url is http here"
    );
    let session = browser.jar["sspr_session"].clone();

    let secret = register_totp(&mut browser, &overview).await;
    let overview = browser.get("/register").await;
    assert_page(&overview, StatusCode::OK, "Add another authenticator app");
    assert!(
        overview.body.contains("href=\"/register/remove/totp/"),
        "{}",
        overview.body
    );

    // A reset is a separate visit.
    let mut visit = Browser::new(&app);
    let verify = start(&mut visit, "/reset", &user.sam).await;
    let flow_cookie = visit
        .set_cookies
        .iter()
        .find(|c| c.starts_with("sspr_flow="))
        .expect("flow cookie")
        .clone();
    assert!(flow_cookie.contains("HttpOnly") && flow_cookie.contains("SameSite=Strict"));
    let flow = visit.jar["sspr_flow"].clone();

    let wrong = visit
        .submit(
            &verify,
            "/reset/verify",
            &[("method", "totp"), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(alert(&wrong).contains("attempts left"), "{}", wrong.body);

    let password = verify_totp(&mut visit, &wrong, "/reset", &secret).await;
    assert_page(&password, StatusCode::OK, "Choose a new password");
    // The rules that apply, listed before anything is typed: the test DC's policy and ours.
    let rules = password_rules(&password);
    for rule in [
        "Use at least 7 characters.",
        "Do not use tabs, line breaks or other invisible control characters.",
        "Use at least three of these four: capital letters",
        "Do not use your username or any part of your name.",
        "Do not use a commonly used password",
        "Make it hard to guess",
    ] {
        assert!(
            rules.iter().any(|r| r.starts_with(rule)),
            "{rule} not in {rules:?}"
        );
    }
    // The test DC (Samba) has no policy hints, so it would not enforce the history of 24 on a
    // reset: the service keeps it, and lists it.
    assert!(
        rules
            .iter()
            .any(|r| r == "Do not use any of your last 24 passwords again."),
        "{rules:?}"
    );
    assert_eq!(
        password
            .body
            .matches("autocomplete=\"new-password\"")
            .count(),
        2
    );

    let differ = visit
        .submit(
            &password,
            "/reset/password",
            &[
                ("new_password", "Pages-Pass-11!"),
                ("confirm_password", "Pages-Pass-12!"),
            ],
        )
        .await;
    assert_eq!(differ.status, StatusCode::BAD_REQUEST);
    assert!(alert(&differ).contains("not the same"));
    bind(&user.dn, &user.password).await.expect("untouched");

    // The policy refuses it before AD sees it: the user stays on the password step, with the
    // rules broken listed.
    let refused = visit
        .submit(
            &differ,
            "/reset/password",
            &[("new_password", "Ab1!"), ("confirm_password", "Ab1!")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("Choose another password")
            && refused.body.contains("at least 7 characters"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("action=\"/reset/password\""));
    assert_eq!(
        password_rules(&refused),
        rules,
        "still listed after a refusal"
    );
    bind(&user.dn, &user.password).await.expect("untouched");

    // A tab (or any control character) is refused by name, in the visitor's language too.
    let tabbed = visit
        .submit(
            &refused,
            "/reset/password",
            &[
                ("new_password", "Velvet-Harbour\tTram-82"),
                ("confirm_password", "Velvet-Harbour\tTram-82"),
            ],
        )
        .await;
    assert_eq!(tabbed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        alert(&tabbed).contains("invisible control characters"),
        "{}",
        tabbed.body
    );
    bind(&user.dn, &user.password).await.expect("untouched");

    let done = visit
        .submit(
            &tabbed,
            "/reset/password",
            &[
                ("new_password", "Pages-Pass-13!"),
                ("confirm_password", "Pages-Pass-13!"),
            ],
        )
        .await;
    assert_page(
        &done,
        StatusCode::OK,
        "You can now sign in with your new password",
    );
    assert!(
        !visit.jar.contains_key("sspr_flow"),
        "the spent flow's cookie is deleted"
    );
    bind(&user.dn, "Pages-Pass-13!")
        .await
        .expect("new password binds");
    assert!(
        bind(&user.dn, &user.password).await.is_err(),
        "old password fails"
    );

    let pages = [&verify, &wrong, &password, &differ, &refused, &done];
    visit.assert_bearers_stay_in_cookies(&[&flow], &pages);
    browser.assert_bearers_stay_in_cookies(&[&session], &[&overview]);
}

#[tokio::test]
async fn email_registration_reset_removal_and_sign_out_through_the_pages() {
    let app = app("").await;
    let user = create_user("pge").await;
    let mut browser = Browser::new(&app);
    sign_in(&mut browser, &user).await;

    let form = browser.get("/register/email").await;
    let prefilled = forms(&form.body)
        .into_iter()
        .find(|f| f.action == "/register/email")
        .and_then(|f| f.fields.into_iter().find(|(k, _)| k == "address"))
        .map(|(_, v)| v);
    assert_eq!(
        prefilled.as_deref(),
        Some(format!("{}@mail.test", user.sam).as_str()),
        "from AD's mail"
    );
    let address = unique_address();
    let sent = browser
        .submit(&form, "/register/email", &[("address", &address)])
        .await;
    assert_page(&sent, StatusCode::OK, &address);
    let code = wait_for_mail(&address)
        .await
        .code_in()
        .expect("code mailed");

    let wrong = browser
        .submit(&sent, "/register/email/confirm", &[("code", "12345678")])
        .await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(alert(&wrong).contains("attempts left"));
    let added = browser
        .submit(&wrong, "/register/email/confirm", &[("code", &code)])
        .await;
    assert_page(&added, StatusCode::OK, "Your email address is set up.");
    assert_page(&added, StatusCode::OK, "***@mail.test");
    assert!(
        !added.body.contains(&address),
        "the overview masks the address"
    );
    wait_for_mail(&address).await; // "a method was added"

    // Reset with an emailed code.
    let mut visit = Browser::new(&app);
    let verify = start(&mut visit, "/reset", &user.upn).await;
    let asked = visit.submit(&verify, "/reset/email", &[]).await;
    assert_page(
        &asked,
        StatusCode::OK,
        "We sent a code to the email address you set up.",
    );
    let code = wait_for_mail(&address)
        .await
        .code_in()
        .expect("reset code mailed");
    let password = visit
        .submit(
            &asked,
            "/reset/verify",
            &[("method", "email"), ("code", &code)],
        )
        .await;
    assert_page(&password, StatusCode::OK, "Choose a new password");
    let done = visit
        .submit(
            &password,
            "/reset/password",
            &[
                ("new_password", "Mailed-Pages-Pass-7"),
                ("confirm_password", "Mailed-Pages-Pass-7"),
            ],
        )
        .await;
    assert_page(
        &done,
        StatusCode::OK,
        "You can now sign in with your new password",
    );
    bind(&user.dn, "Mailed-Pages-Pass-7")
        .await
        .expect("new password binds");
    wait_for_mail(&address).await; // "your password was reset"

    // The reset ended the registration session opened with the old password.
    let ended = browser.get("/register").await;
    assert_page(&ended, StatusCode::OK, "autocomplete=\"current-password\"");
    let user = TestUser {
        password: "Mailed-Pages-Pass-7".to_owned(),
        ..user
    };
    let overview = sign_in(&mut browser, &user).await;
    // A new session proves the registered address before it may remove it.
    assert_page(&overview, StatusCode::OK, "Confirm it is you");
    assert!(
        !overview.body.contains("/register/remove/email"),
        "no change yet"
    );
    let asked = browser
        .submit(&overview, "/register/step-up/email", &[])
        .await;
    assert_page(&asked, StatusCode::OK, "we sent a code to it");
    let code = wait_for_mail(&address)
        .await
        .code_in()
        .expect("step-up code mailed");
    let stepped = browser
        .submit(
            &asked,
            "/register/step-up",
            &[("method", "email"), ("code", &code)],
        )
        .await;
    assert_page(
        &stepped,
        StatusCode::OK,
        "Confirmed. You can now change your methods.",
    );

    // Removal takes a confirmation step.
    let confirm = browser.get("/register/remove/email").await;
    assert_page(
        &confirm,
        StatusCode::OK,
        "Do you want to remove your email address?",
    );
    let removed = browser
        .submit(&confirm, "/register/remove/email", &[])
        .await;
    assert_page(&removed, StatusCode::OK, "The method was removed.");
    assert_page(&removed, StatusCode::OK, "No address set up.");
    wait_for_mail(&address).await; // "a method was removed"

    let signed_out = browser.submit(&overview, "/register/sign-out", &[]).await;
    assert_page(&signed_out, StatusCode::OK, "You are signed out.");
    assert!(!browser.jar.contains_key("sspr_session"));
    let again = browser.get("/register").await;
    assert_page(&again, StatusCode::OK, "autocomplete=\"current-password\"");
}

#[tokio::test]
async fn unlock_through_the_pages_after_a_real_lockout() {
    let app = app("").await;
    let user = create_user("pgu").await;
    let mut browser = Browser::new(&app);
    let overview = sign_in(&mut browser, &user).await;
    let secret = register_totp(&mut browser, &overview).await;
    for _ in 0..6 {
        let _ = bind(&user.dn, "wrong-password").await;
    }
    let (rc, text) = bind(&user.dn, &user.password).await.expect_err("locked");
    assert!(rc == 49 && text.contains("775"), "{rc} {text}");

    let mut visit = Browser::new(&app);
    let verify = start(&mut visit, "/unlock", &user.sam).await;
    let flow = visit.jar["sspr_flow"].clone();
    assert_eq!(visit.redirected.as_deref(), Some("/unlock/verify"));
    let confirm = verify_totp(&mut visit, &verify, "/unlock", &secret).await;
    assert_eq!(visit.redirected.as_deref(), Some("/unlock/confirm"));
    assert_page(&confirm, StatusCode::OK, "Unlock my account");
    // Reload: the same page, and nothing posted again.
    let reloaded = visit.get("/unlock/confirm").await;
    assert_page(&reloaded, StatusCode::OK, "Unlock my account");
    let done = visit.submit(&confirm, "/unlock/confirm", &[]).await;
    assert_eq!(visit.redirected.as_deref(), Some("/unlock/done"));
    assert_page(&done, StatusCode::OK, "Your account is unlocked");
    let reloaded = visit.get("/unlock/done").await;
    assert_page(&reloaded, StatusCode::OK, "Your account is unlocked");
    bind(&user.dn, &user.password)
        .await
        .expect("unlocked, same password");
    visit.assert_bearers_stay_in_cookies(&[&flow], &[&verify, &confirm, &done]);
}

#[tokio::test]
async fn posts_without_the_right_csrf_token_are_refused_and_change_nothing() {
    let app = app("").await;
    let user = create_user("pgc").await;

    // No token at all: no sign-in happens.
    let mut forger = Browser::new(&app);
    let refused = forger
        .post(
            "/register",
            &[("username", &user.sam), ("password", &user.password)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(alert(&refused).contains("Nothing was changed"));
    assert!(!forger.jar.contains_key("sspr_session"));

    // A cookie, but a field that does not match it.
    let mut browser = Browser::new(&app);
    let overview = sign_in(&mut browser, &user).await;
    let secret = register_totp(&mut browser, &overview).await;
    let verify = start(&mut browser, "/reset", &user.sam).await;
    let password = verify_totp(&mut browser, &verify, "/reset", &secret).await;
    assert_page(&password, StatusCode::OK, "Choose a new password");
    let csrf = csrf_field(&password, "/reset/password");
    let forged = "A".repeat(csrf.len());
    for fields in [vec![("csrf", forged.as_str())], vec![("csrf", "")], vec![]] {
        let mut fields = fields;
        fields.extend([
            ("new_password", "Forged-Pass-1!"),
            ("confirm_password", "Forged-Pass-1!"),
        ]);
        let answer = browser.post("/reset/password", &fields).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{fields:?}");
    }
    // The right field without the cookie (another browser that learnt the token).
    let flow = browser.jar["sspr_flow"].clone();
    let mut other = Browser::new(&app);
    other.jar.insert("sspr_flow".into(), flow);
    let answer = other
        .post(
            "/reset/password",
            &[
                ("csrf", &csrf),
                ("new_password", "Forged-Pass-1!"),
                ("confirm_password", "Forged-Pass-1!"),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    bind(&user.dn, &user.password).await.expect("AD untouched");
    assert!(bind(&user.dn, "Forged-Pass-1!").await.is_err());

    // The flow itself was not harmed: the real form still works.
    let done = browser
        .submit(
            &password,
            "/reset/password",
            &[
                ("new_password", "Real-Pass-2!"),
                ("confirm_password", "Real-Pass-2!"),
            ],
        )
        .await;
    assert_page(
        &done,
        StatusCode::OK,
        "You can now sign in with your new password",
    );
}

/// A sibling host can plant cookies for the parent domain. A CSRF cookie it planted, posted with
/// a field equal to it (plain double-submit), must not pass beside the victim's valid session or
/// flow.
#[tokio::test]
async fn a_planted_csrf_cookie_with_a_matching_field_is_refused_and_changes_nothing() {
    let app = app("").await;
    let user = create_user("pgp").await;
    let mut browser = Browser::new(&app);
    let overview = sign_in(&mut browser, &user).await;
    assert!(browser.jar.contains_key("sspr_session"));
    let own = browser.jar["sspr_csrf"].clone();
    let planted = "Planted-by-a-sibling-host_0123456789abcdef";

    // The registration area: the session is not ended.
    browser.jar.insert("sspr_csrf".into(), planted.into());
    let refused = browser
        .post("/register/sign-out", &[("csrf", planted)])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(alert(&refused).contains("Nothing was changed"));
    assert!(browser.jar.contains_key("sspr_session"));
    browser.jar.insert("sspr_csrf".into(), own.clone());
    let unchanged = browser.get("/register").await;
    assert_page(&unchanged, StatusCode::OK, "Your verification methods");

    // The reset area: nothing is written to AD.
    let secret = register_totp(&mut browser, &overview).await;
    let verify = start(&mut browser, "/reset", &user.sam).await;
    let password = verify_totp(&mut browser, &verify, "/reset", &secret).await;
    assert_page(&password, StatusCode::OK, "Choose a new password");
    browser.jar.insert("sspr_csrf".into(), planted.into());
    let refused = browser
        .post(
            "/reset/password",
            &[
                ("csrf", planted),
                ("new_password", "Planted-Pass-1!"),
                ("confirm_password", "Planted-Pass-1!"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(alert(&refused).contains("Nothing was changed"));
    bind(&user.dn, &user.password).await.expect("AD untouched");
    assert!(bind(&user.dn, "Planted-Pass-1!").await.is_err());

    // The victim's own form still works.
    browser.jar.insert("sspr_csrf".into(), own);
    let done = browser
        .submit(
            &password,
            "/reset/password",
            &[
                ("new_password", "Own-Pages-Pass-3!"),
                ("confirm_password", "Own-Pages-Pass-3!"),
            ],
        )
        .await;
    assert_page(
        &done,
        StatusCode::OK,
        "You can now sign in with your new password",
    );
    bind(&user.dn, "Own-Pages-Pass-3!")
        .await
        .expect("new password binds");
}

/// An attacker's own page gives them a real cookie and token pair; planted in the victim's
/// browser, it is bound to the attacker's flow, not the victim's.
#[tokio::test]
async fn a_token_from_another_users_page_does_not_work_with_this_flow_or_session() {
    let app = app("").await;
    let attacker = create_user("pga").await;
    let victim = create_user("pgv").await;

    let mut theirs = Browser::new(&app);
    let their_overview = sign_in(&mut theirs, &attacker).await;
    let their_session_token = csrf_field(&their_overview, "/register/sign-out");
    let their_verify = start(&mut theirs, "/reset", &attacker.sam).await;
    let their_flow_token = csrf_field(&their_verify, "/reset/verify");
    let their_cookie = theirs.jar["sspr_csrf"].clone();

    let mut browser = Browser::new(&app);
    let overview = sign_in(&mut browser, &victim).await;
    let own = browser.jar["sspr_csrf"].clone();

    // The registration session: not ended.
    for cookie in [&their_cookie, &own] {
        browser.jar.insert("sspr_csrf".into(), cookie.clone());
        let refused = browser
            .post("/register/sign-out", &[("csrf", &their_session_token)])
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    }
    browser.jar.insert("sspr_csrf".into(), own.clone());
    let unchanged = browser.get("/register").await;
    assert_page(&unchanged, StatusCode::OK, "Your verification methods");

    // The reset flow: AD is not written.
    let secret = register_totp(&mut browser, &overview).await;
    let verify = start(&mut browser, "/reset", &victim.sam).await;
    let password = verify_totp(&mut browser, &verify, "/reset", &secret).await;
    assert_page(&password, StatusCode::OK, "Choose a new password");
    for cookie in [&their_cookie, &own] {
        browser.jar.insert("sspr_csrf".into(), cookie.clone());
        let refused = browser
            .post(
                "/reset/password",
                &[
                    ("csrf", &their_flow_token),
                    ("new_password", "Crossed-Pass-1!"),
                    ("confirm_password", "Crossed-Pass-1!"),
                ],
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    }
    bind(&victim.dn, &victim.password)
        .await
        .expect("AD untouched");
    assert!(bind(&victim.dn, "Crossed-Pass-1!").await.is_err());

    // Each token still works in its own browser.
    browser.jar.insert("sspr_csrf".into(), own);
    let done = browser
        .submit(
            &password,
            "/reset/password",
            &[
                ("new_password", "Own-Pages-Pass-4!"),
                ("confirm_password", "Own-Pages-Pass-4!"),
            ],
        )
        .await;
    assert_page(
        &done,
        StatusCode::OK,
        "You can now sign in with your new password",
    );
    let their_start_again = theirs.get("/reset").await;
    assert_eq!(their_start_again.status, StatusCode::OK);
}

#[tokio::test]
async fn an_ended_flow_says_start_again_and_links_the_helpdesk() {
    let app = app("").await;
    let mut browser = Browser::new(&app);
    let form = browser.get("/reset").await;
    // A step without its flow cookie (the browser ended its session, or the flow was finished
    // in another tab): the form's token was bound to that flow, so it is refused as expired.
    let page = browser
        .submit(&form, "/reset", &[("username", "someone")])
        .await;
    browser.jar.remove("sspr_flow");
    let ended = browser
        .submit(
            &page,
            "/reset/verify",
            &[("method", "totp"), ("code", "123456")],
        )
        .await;
    assert_eq!(ended.status, StatusCode::FORBIDDEN);
    let text = alert(&ended);
    assert!(text.contains("expired"), "{text}");
    assert!(text.contains("href=\"/reset\""), "{text}");
    assert!(
        unescape(&ended.body).contains("mailto:helpdesk@example.test"),
        "{}",
        ended.body
    );
    // The footer links the helpdesk on every page.
    assert!(
        form.body
            .contains("<footer><a href=\"mailto:helpdesk@example.test\">")
    );

    // A reload of a step goes back to the start instead of a bare 405.
    let reload = browser.get("/reset/verify?lang=nl").await;
    assert_eq!(reload.status, StatusCode::SEE_OTHER);
    assert_eq!(reload.headers[header::LOCATION], "/reset?lang=nl");
}

#[tokio::test]
async fn dutch_pages_render_dutch_texts_and_the_choice_sticks_across_posts() {
    let app = app("[server]\npublic_url = \"https://sspr.example.test/\"").await;
    let mut browser = Browser::new(&app);
    browser.accept_language = Some("nl-NL,nl;q=0.9,en;q=0.5");
    let reset = browser.get("/reset").await;
    assert_page(&reset, StatusCode::OK, "Uw wachtwoord opnieuw instellen");
    assert!(reset.body.contains("<html lang=\"nl\">"));
    assert!(reset.body.contains("Gebruikersnaam"));
    assert!(
        browser.set_cookies.iter().all(|c| c.contains("; Secure")),
        "public_url is https: {:?}",
        browser.set_cookies
    );

    // English by header, switched to Dutch; the switch is kept in a cookie for the POST.
    let mut browser = Browser::new(&app);
    browser.accept_language = Some("en");
    let english = browser.get("/register").await;
    assert_page(&english, StatusCode::OK, "Your verification methods");
    assert!(
        english.body.contains("href=\"&#x2f;register?lang=nl\""),
        "{}",
        english.body
    );
    let dutch = browser.get("/register?lang=nl").await;
    assert_page(&dutch, StatusCode::OK, "Uw verificatiemethoden");
    assert_eq!(browser.jar.get("lang").map(String::as_str), Some("nl"));
    let refused = browser
        .submit(
            &dutch,
            "/register",
            &[("username", "nobody-here"), ("password", "wrong")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(alert(&refused).contains("De gebruikersnaam of het wachtwoord is onjuist."));
    assert!(
        refused
            .body
            .contains("<label for=\"password\">Huidig wachtwoord</label>")
    );

    let unlock = browser.get("/unlock").await;
    assert_page(&unlock, StatusCode::OK, "Uw account deblokkeren");
}

#[tokio::test]
async fn german_by_the_switch_and_french_by_the_header_and_each_links_the_other_languages() {
    let app = app("").await;
    let mut browser = Browser::new(&app);
    let german = browser.get("/reset?lang=de").await;
    assert_page(&german, StatusCode::OK, "Kennwort zurücksetzen");
    assert!(german.body.contains("<html lang=\"de\">"));
    assert!(
        german
            .body
            .contains("<label for=\"username\">Benutzername</label>")
    );
    assert_eq!(browser.jar.get("lang").map(String::as_str), Some("de"));
    // Every other language, named in its own words and marked as such; not the page's own.
    for (tag, name) in [("en", "English"), ("nl", "Nederlands"), ("fr", "Français")] {
        assert!(
            german.body.contains(&format!(
                "href=\"&#x2f;reset?lang={tag}\" hreflang=\"{tag}\" lang=\"{tag}\">{name}</a>"
            )),
            "{tag}: {}",
            german.body
        );
    }
    assert!(!german.body.contains("hreflang=\"de\""));
    assert!(
        german
            .body
            .contains("<nav class=\"langs\" aria-label=\"Sprache\">")
    );
    let refused = browser.submit(&german, "/reset", &[("username", "")]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(
        alert(&refused).contains("Geben Sie Ihren Benutzernamen ein"),
        "the choice sticks across the POST: {}",
        refused.body
    );

    let mut browser = Browser::new(&app);
    browser.accept_language = Some("fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7");
    let french = browser.get("/unlock").await;
    assert_page(&french, StatusCode::OK, "Déverrouiller votre compte");
    assert!(french.body.contains("<html lang=\"fr\">"));
    assert!(french.body.contains("Nom d’utilisateur"));
    assert!(
        french
            .body
            .contains("hreflang=\"de\" lang=\"de\">Deutsch</a>")
    );
    assert!(!french.body.contains("hreflang=\"fr\""));
}

/// Registers an email address and then resets with a code mailed to it, in a browser that asks
/// for `lang` with `query` (the language switch) or `accept_language`; every mail of the two
/// flows must arrive in that language.
async fn code_mails_arrive_in(
    lang: &str,
    query: &str,
    accept_language: Option<&'static str>,
    expected: [&str; 6],
) {
    let [
        overview_title,
        enrollment_subject,
        enrollment_intro,
        added_subject,
        reset_subject,
        reset_intro,
    ] = expected;
    let flat = |text: &str| text.split_ascii_whitespace().collect::<Vec<_>>().join(" ");
    let app = app("").await;
    let user = create_user(&format!("pg{lang}")).await;
    let mut browser = Browser::new(&app);
    browser.accept_language = accept_language;
    let form = browser.get(&format!("/register{query}")).await;
    let overview = browser
        .submit(
            &form,
            "/register",
            &[("username", &user.sam), ("password", &user.password)],
        )
        .await;
    assert_page(&overview, StatusCode::OK, overview_title);
    let form = browser.get("/register/email").await;
    let address = unique_address();
    let sent = browser
        .submit(&form, "/register/email", &[("address", &address)])
        .await;
    assert!(sent.body.contains(&format!("<html lang=\"{lang}\">")));
    let mail = wait_for_mail(&address).await;
    assert_eq!(mail.subject, enrollment_subject);
    assert!(flat(&mail.text).contains(enrollment_intro), "{}", mail.text);
    assert!(flat(&mail.html).contains(enrollment_intro), "{}", mail.html);
    assert!(mail.html.contains(&format!("<html lang=\"{lang}\">")));
    let code = mail.code_in().expect("code mailed");
    let added = browser
        .submit(&sent, "/register/email/confirm", &[("code", &code)])
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert_eq!(wait_for_mail(&address).await.subject, added_subject);

    let mut visit = Browser::new(&app);
    visit.accept_language = accept_language;
    let form = visit.get(&format!("/reset{query}")).await;
    let verify = visit
        .submit(&form, "/reset", &[("username", &user.upn)])
        .await;
    assert_eq!(verify.status, StatusCode::OK, "{}", verify.body);
    let asked = visit.submit(&verify, "/reset/email", &[]).await;
    assert!(asked.body.contains(&format!("<html lang=\"{lang}\">")));
    let mail = wait_for_mail(&address).await;
    assert_eq!(mail.subject, reset_subject);
    assert!(flat(&mail.text).contains(reset_intro), "{}", mail.text);
    assert!(mail.code_in().is_some(), "{}", mail.text);
}

#[tokio::test]
async fn code_mails_of_a_flow_started_in_german_arrive_in_german() {
    code_mails_arrive_in(
        "de",
        "?lang=de",
        None,
        [
            "Ihre Überprüfungsmethoden",
            "Bestätigen Sie Ihre E-Mail-Adresse",
            "Geben Sie diesen Code ein, um sie zu bestätigen:",
            "Ihrem Konto wurde eine Überprüfungsmethode hinzugefügt",
            "Ihr Überprüfungscode",
            "Bestätigen Sie mit diesem Code, dass Sie es sind:",
        ],
    )
    .await;
}

#[tokio::test]
async fn code_mails_of_a_flow_started_in_french_arrive_in_french() {
    code_mails_arrive_in(
        "fr",
        "",
        Some("fr-FR,fr;q=0.9,en;q=0.5"),
        [
            "Vos méthodes de vérification",
            "Confirmez votre adresse e-mail",
            "Saisissez ce code pour la confirmer\u{a0}:",
            "Une méthode de vérification a été ajoutée à votre compte",
            "Votre code de vérification",
            "Utilisez ce code pour confirmer qu’il s’agit bien de vous\u{a0}:",
        ],
    )
    .await;
}

#[tokio::test]
async fn without_the_licence_the_gate_answers_for_every_page_and_post() {
    let app = test_app("").await;
    let mut browser = Browser::new(&app);
    for path in ["/reset/verify", "/unlock/confirm"] {
        let answer = browser.post(path, &[("csrf", "x")]).await;
        assert_page(
            &answer,
            StatusCode::FORBIDDEN,
            "Self-service is not available",
        );
    }
    // Registration stays open for helpdesk operators; anyone else is told once their password
    // is proven.
    let form = browser.get("/register").await;
    assert_page(&form, StatusCode::OK, "autocomplete=\"current-password\"");
    let user = create_user("pgl").await;
    let refused = browser
        .submit(
            &form,
            "/register",
            &[("username", &user.sam), ("password", &user.password)],
        )
        .await;
    assert_page(
        &refused,
        StatusCode::FORBIDDEN,
        "The helpdesk can do it for you.",
    );
}
