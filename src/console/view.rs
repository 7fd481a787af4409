//! What every page shares: the languages, the layout with its menu by role, the words for states,
//! roles and actions, times, pagers, and the stylesheet.

use super::form::encode;
use super::Ctx;
use crate::authz::Role;
use crate::seal::SealState;
use hyper::StatusCode;
use maud::{html, Markup, DOCTYPE};

/// The reader's language: Simplified Chinese unless they chose English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    Zh,
    En,
}

impl Lang {
    /// From the language cookie; Chinese by default.
    pub(crate) fn of(cookie: Option<&str>, _headers: &hyper::HeaderMap) -> Lang {
        match cookie {
            Some("en") => Lang::En,
            _ => Lang::Zh,
        }
    }

    pub(crate) fn t<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    fn html_lang(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }
}

/// The stylesheet, served at `/console/static/console.css`.
pub(crate) const STYLE: &str = include_str!("console.css");

/// The one script, served at `/console/static/console.js`: placing a seal on a page's preview.
pub(crate) const SCRIPT: &str = include_str!("console.js");

/// A role's name.
pub(crate) fn role(lang: Lang, r: Role) -> &'static str {
    match r {
        Role::Sysadmin => lang.t("系统管理员", "System administrator"),
        Role::Secofficer => lang.t("安全保密员", "Security officer"),
        Role::Auditor => lang.t("安全审计员", "Auditor"),
        Role::Issuer => lang.t("印章核发人员", "Issuer"),
        Role::UnitAdmin => lang.t("单位印章管理员", "Unit administrator"),
        Role::App => lang.t("应用系统", "Application"),
    }
}

/// A seal state's name.
pub(crate) fn state(lang: Lang, s: SealState) -> &'static str {
    match s {
        SealState::Applied => lang.t("待审批", "Applied"),
        SealState::Approved => lang.t("已批准", "Approved"),
        SealState::Rejected => lang.t("已驳回", "Rejected"),
        SealState::Made => lang.t("已制作", "Made"),
        SealState::Active => lang.t("在用", "Active"),
        SealState::Frozen => lang.t("已冻结", "Frozen"),
        SealState::Revoked => lang.t("已注销", "Revoked"),
    }
}

/// A lifecycle action's name (as journalled: `approve`, `freeze`, …).
pub(crate) fn action(lang: Lang, a: &str) -> String {
    let (zh, en) = match a {
        "apply" => ("申请", "Apply"),
        "approve" => ("批准", "Approve"),
        "reject" => ("驳回", "Reject"),
        "make" => ("制作", "Make"),
        "publish" => ("发布", "Publish"),
        "freeze" => ("冻结", "Freeze"),
        "unfreeze" => ("解冻", "Unfreeze"),
        "revoke" => ("注销", "Revoke"),
        "change" => ("变更", "Change"),
        "renew" => ("续期", "Renew"),
        "certificate" => ("绑定证书", "Certificate bound"),
        other => return other.to_string(),
    };
    lang.t(zh, en).to_string()
}

/// A state badge.
pub(crate) fn badge(lang: Lang, s: SealState) -> Markup {
    html! { span class={"badge " (s.name())} { (state(lang, s)) } }
}

/// A time, RFC 3339 in the appliance's local offset, to the second.
pub(crate) fn when(ctx: &Ctx, ms: u64) -> String {
    rfc3339(ms, ctx.app.signing.registry().settings().utc_offset_hours)
}

/// `ms` as RFC 3339 at `offset_hours` from UTC, to the second.
pub(crate) fn rfc3339(ms: u64, offset_hours: i8) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let t = t.to_offset(time::UtcOffset::from_hms(offset_hours, 0, 0).unwrap_or(time::UtcOffset::UTC));
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The token's health, as a badge and the reason.
pub(crate) fn health(ctx: &Ctx, health: &crate::token::Health) -> Markup {
    use crate::token::Health;
    html! {
        @match health {
            Health::Ready => span.badge.ok { (ctx.t("正常", "ready")) },
            Health::Degraded(why) => { span.badge.warn { (ctx.t("降级", "degraded")) } " " (why) },
            Health::Down(why) => { span.badge.bad { (ctx.t("不可用", "down")) } " " (why) },
        }
    }
}

/// The date of a time, in the appliance's local offset.
pub(crate) fn day(ctx: &Ctx, ms: u64) -> String {
    when(ctx, ms).get(..10).unwrap_or("").to_string()
}

/// The menu: each role sees its own pages.
fn menu(ctx: &Ctx) -> Vec<(&'static str, &'static str)> {
    let l = ctx.lang;
    let mut m = vec![("/console/", l.t("概览", "Dashboard"))];
    match ctx.p.role {
        Role::Issuer => m.extend([
            ("/console/inbox", l.t("待办审批", "Inbox")),
            ("/console/seals", l.t("印章", "Seals")),
            ("/console/filings", l.t("备案", "Filings")),
        ]),
        Role::UnitAdmin => m.extend([
            ("/console/seals", l.t("本单位印章", "Our seals")),
            ("/console/seals/new", l.t("申请印章", "Apply")),
            ("/console/seal-document", l.t("文档盖章", "Seal a document")),
        ]),
        Role::Auditor => m.extend([
            ("/console/audit", l.t("审计日志", "Journal")),
            ("/console/seals", l.t("印章", "Seals")),
            ("/console/filings", l.t("备案", "Filings")),
            ("/console/requests", l.t("双人复核", "Dual control")),
        ]),
        Role::Secofficer => {
            m.extend([("/console/keys", l.t("密钥", "Keys")), ("/console/requests", l.t("双人复核", "Dual control"))])
        }
        Role::Sysadmin => m.extend([
            ("/console/accounts", l.t("账户", "Accounts")),
            ("/console/units", l.t("单位", "Units")),
            ("/console/requests", l.t("双人复核", "Dual control")),
        ]),
        Role::App => {}
    }
    m.push(("/console/verify", l.t("验证", "Verify")));
    m
}

/// Whether the menu entry `href` is the page at `here` (or a page under it).
fn is_on(here: &str, href: &str) -> bool {
    match href {
        "/console/" => here == href,
        "/console/seals" => here == href || (here.starts_with("/console/seals/") && here != "/console/seals/new"),
        _ => here == href || here.strip_prefix(href).is_some_and(|r| r.starts_with('/')),
    }
}

/// A whole page: the header with the account and the language switch, the menu, and `body`.
pub(crate) fn page(ctx: &Ctx, title: &str, body: Markup) -> Markup {
    let l = ctx.lang;
    let here = ctx.path.as_str();
    html! {
        (DOCTYPE)
        html lang=(l.html_lang()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (l.t("电子印章管理平台", "seald console")) }
                link rel="stylesheet" href="/console/static/console.css";
            }
            body {
                header {
                    span.brand { (l.t("电子印章管理平台", "Electronic seal console")) }
                    span.who {
                        (ctx.p.account) " · " (role(l, ctx.p.role))
                        @if let Some(u) = &ctx.p.unit { " · " (u) }
                    }
                    span.lang {
                        @if l == Lang::Zh { a href="/console/lang?to=en" { "English" } }
                        @else { a href="/console/lang?to=zh" { "中文" } }
                    }
                }
                nav {
                    @for (href, label) in menu(ctx) {
                        @let on = is_on(here, href);
                        a href=(href) class=[on.then_some("on")] { (label) }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden form token every form carries.
pub(crate) fn csrf(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.csrf); }
}

/// "Next page" for a paged list: `base` already has its filters; the cursor is added.
pub(crate) fn pager(ctx: &Ctx, base: &str, next: Option<&str>) -> Markup {
    let sep = if base.contains('?') { '&' } else { '?' };
    html! {
        @if let Some(c) = next {
            p.pager { a href={(base) (sep) "cursor=" (encode(c))} { (ctx.t("下一页 →", "Next page →")) } }
        }
    }
}

/// A refusal inside the layout, with its stable code.
pub(crate) fn refused_in_layout(ctx: &Ctx, status: StatusCode, code: &str, message: &str) -> (StatusCode, Markup) {
    let title = if status.is_server_error() {
        ctx.t("出错了", "Something failed")
    } else {
        ctx.t("未能完成", "Not done")
    };
    let body = html! {
        div.refusal {
            p { (message) }
            p.code { (ctx.t("错误代码", "Error code")) ": " code { (code) } " (" (status.as_u16()) ")" }
        }
        p { a href="/console/" { (ctx.t("返回概览", "Back to the dashboard")) } }
    };
    (status, page(ctx, title, body))
}

/// A refusal before anyone is known (no layout, no menu).
pub(crate) fn refused_page(lang: Lang, status: StatusCode, code: &str, message: &str) -> (StatusCode, Markup) {
    let m = html! {
        (DOCTYPE)
        html lang=(lang.html_lang()) {
            head {
                meta charset="utf-8";
                title { (lang.t("无权访问", "Not allowed")) }
                link rel="stylesheet" href="/console/static/console.css";
            }
            body { main {
                h1 { (lang.t("无权访问", "Not allowed")) }
                div.refusal { p { (message) } p.code { code { (code) } } }
            } }
        }
    };
    (status, m)
}

pub(crate) fn no_account(lang: Lang) -> String {
    lang.t(
        "您的证书不属于本平台的任何账户。请联系系统管理员。",
        "Your certificate belongs to no account here. Ask the system administrator.",
    )
    .to_string()
}

pub(crate) fn app_refused(lang: Lang) -> String {
    lang.t(
        "应用系统的证书只能调用接口，不能登录管理控制台。",
        "An application's certificate calls the API; it cannot open the console.",
    )
    .to_string()
}
