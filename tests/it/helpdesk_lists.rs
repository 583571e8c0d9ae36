//! The helpdesk's lists (`/helpdesk/lists`) against the real DC: a locked-out account and one
//! whose password must be changed are listed, an ordinary one is not, and the list leads to the
//! caller's card, where the operator still verifies the caller before unlocking.

use axum::http::{StatusCode, header};

use crate::harness::{
    TestUser, add_member, bind, create_group, create_user, set_attr, unique_name,
};
use crate::helpdesk::{Desk, desk};
use crate::helpdesk_pages::operator_signs_in;
use crate::pages::{Browser, assert_page};

/// Bad binds past the test DC's lockout threshold (5); asserts the account is locked.
pub async fn lock_out(user: &TestUser) {
    for _ in 0..6 {
        let _ = bind(&user.dn, "wrong-password").await;
    }
    let (rc, text) = bind(&user.dn, &user.password)
        .await
        .expect_err("locked out");
    assert!(rc == 49 && text.contains("data 775"), "{rc} {text}");
}

pub async fn signed_in(desk: &Desk) -> Browser<'_> {
    operator_signs_in(desk).await.0
}

/// The part of `html` inside the table `id`, or "" without one.
fn table<'h>(html: &'h str, id: &str) -> &'h str {
    let Some(start) = html.find(&format!("<table class=\"events\" id=\"{id}\">")) else {
        return "";
    };
    let rest = &html[start..];
    &rest[..rest.find("</table>").unwrap()]
}

#[tokio::test]
async fn the_lists_show_locked_and_must_change_accounts_and_lead_to_verification() {
    let desk = desk("").await;
    let locked = create_user("lstlock").await;
    lock_out(&locked).await;
    let must_change = create_user("lstmust").await;
    set_attr(&must_change.dn, "pwdLastSet", "0").await;
    let ordinary = create_user("lstplain").await;

    let mut anonymous = Browser::new(&desk.app);
    let page = anonymous.get("/helpdesk/lists").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.headers[header::LOCATION], "/helpdesk");

    let mut browser = signed_in(&desk).await;
    let lists = browser.get("/helpdesk/lists").await;
    assert_page(&lists, StatusCode::OK, "Accounts that need attention");
    let locked_table = table(&lists.body, "list-locked");
    let must_table = table(&lists.body, "list-must-change");
    assert!(locked_table.contains(&locked.sam), "{}", lists.body);
    assert!(!locked_table.contains(&must_change.sam), "{locked_table}");
    assert!(must_table.contains(&must_change.sam), "{}", lists.body);
    assert!(!must_table.contains(&locked.sam), "{must_table}");
    assert!(!lists.body.contains(&ordinary.sam), "{}", lists.body);
    // The operator's own account is a helpdesk member: not one to act on.
    assert!(!lists.body.contains(&desk.operator.sam), "{}", lists.body);

    // "Verify and unlock" opens the caller's card: no unlock before the caller is verified.
    let card = browser
        .submit(&lists, "/helpdesk/user", &[("id", locked.sam.as_str())])
        .await;
    assert_eq!(browser.redirected.as_deref(), Some("/helpdesk/user"));
    assert_page(&card, StatusCode::OK, "Verify the caller first");
    assert!(!card.body.contains("action=\"/helpdesk/user/unlock\""));
    bind(&locked.dn, &locked.password)
        .await
        .expect_err("still locked");
}

/// On the test DC a password lasts the domain's maximum age (42 days) from when it was set, so a
/// window of 60 days lists a fresh account as expiring, with the day it expires; a window of 14
/// days does not. Scoped to a group of its own, so other tests' accounts don't crowd the list.
#[tokio::test]
async fn the_expiring_list_shows_a_password_inside_the_window_only() {
    let scope = create_group(&unique_name("lstscope")).await;
    let expiring = create_user("lstexp").await;
    add_member(&scope, &expiring.dn).await;
    let outsider = create_user("lstout").await;
    let scoped = format!("[policy]\nscope = \"group\"\ngroup_dn = {scope:?}\n");

    let wide = desk(&format!("expiring_within = \"60 days\"\n{scoped}")).await;
    let mut browser = signed_in(&wide).await;
    let lists = browser.get("/helpdesk/lists").await;
    assert_page(&lists, StatusCode::OK, "Accounts that need attention");
    assert!(lists.body.contains("(60 days)"), "{}", lists.body);
    let expiring_table = table(&lists.body, "list-expiring");
    assert!(expiring_table.contains(&expiring.sam), "{}", lists.body);
    assert!(
        expiring_table.contains("<time datetime="),
        "{expiring_table}"
    );
    assert!(
        !lists.body.contains(&outsider.sam),
        "outside the scope group"
    );

    let narrow = desk(&format!("expiring_within = \"14 days\"\n{scoped}")).await;
    let mut browser = signed_in(&narrow).await;
    let lists = browser.get("/helpdesk/lists").await;
    assert!(
        !table(&lists.body, "list-expiring").contains(&expiring.sam),
        "{}",
        lists.body
    );
}
