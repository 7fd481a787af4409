//! The administrators' pages (三员): a security officer's keys, rotations and the dual-control
//! inbox (a second officer approves), token state; a system administrator's accounts, units and
//! the certificates bound to accounts.

use super::form::{encode, Form, Query};
use super::view::{self, csrf, page, pager, when};
use super::{with, Answer, Ctx, Refusal, Reply};
use crate::authz::Role;
use crate::seal::{AccountChange, AccountSpec, AccountUpdate, RequestState, UnitSpec};
use hyper::StatusCode;
use maud::{html, Markup};

fn ok(m: Markup) -> Reply {
    Ok(Answer::Page(StatusCode::OK, m))
}

/// Keys: the appliance's and each seal's, with their versions; rotate, activate, destroy.
pub(crate) async fn keys(ctx: &Ctx, q: &Query) -> Reply {
    let cursor = q.get("cursor").map(str::to_string);
    let (list, next) = with(ctx, move |r, p| r.dual_control().key_list_page(p, cursor.as_deref(), 100)).await?;
    let health = ctx.app.pool.health();
    let stats = ctx.app.pool.stats();
    let body = html! {
        h2 { (ctx.t("密码设备", "Token")) }
        dl.fields {
            dt { (ctx.t("状态", "State")) }
            dd id="token" { (view::health(ctx, &health)) }
            dt { (ctx.t("会话", "Sessions")) } dd { (format!("{stats:?}")) }
        }
        details {
            summary { (ctx.t("更换密码设备 PIN（须另一名安全保密员复核）", "Change the token's PIN (a second officer approves)")) }
            form.box method="post" action="/console/token/pin" autocomplete="off" {
                (csrf(ctx))
                label { span { (ctx.t("新 PIN", "New PIN")) } input type="password" name="new_pin" autocomplete="new-password" required; }
                label { span { (ctx.t("再次输入", "Again")) } input type="password" name="again" autocomplete="new-password" required; }
                button.danger type="submit" { (ctx.t("提交复核", "Ask for approval")) }
            }
        }
        h2 { (ctx.t("密钥", "Keys")) }
        table id="keys" {
            tr { th { (ctx.t("密钥", "Key")) } th { (ctx.t("算法", "Algorithm")) } th { (ctx.t("版本", "Versions")) } th {} }
            @for k in &list {
                @let name = encode(&k.key);
                tr data-key=(k.key) {
                    td { code { (k.key) } @if let Some(s) = k.seal_state { " " (view::badge(ctx.lang, s)) } }
                    td { (k.alg.name()) }
                    td { @for v in &k.versions {
                        div {
                            "v" (v.version) " · " (super::seals::key_state(ctx, v.state))
                            @if let Some(t) = v.not_after_ms { " · " (ctx.t("至 ", "until ")) (view::day(ctx, t)) }
                            @if v.expiring { " " span.badge.warn { (ctx.t("即将到期", "expiring")) } }
                            @if v.state == crate::seal::KeyState::Pending {
                                " " form.inline method="post" action={"/console/keys/" (name) "/activate"} {
                                    (csrf(ctx)) input type="hidden" name="version" value=(v.version);
                                    button.primary type="submit" { (ctx.t("启用", "Activate")) } }
                            }
                            @if v.state == crate::seal::KeyState::Retired {
                                " " form.inline method="post" action={"/console/keys/" (name) "/destroy"} {
                                    (csrf(ctx)) input type="hidden" name="version" value=(v.version);
                                    button.danger type="submit" { (ctx.t("申请销毁", "Request destruction")) } }
                            }
                        }
                    } }
                    td { form.inline method="post" action={"/console/keys/" (name) "/rotate"} {
                        (csrf(ctx)) button type="submit" { (ctx.t("轮换（生成新版本）", "Rotate (new version)")) } } }
                }
            }
        }
        (pager(ctx, "/console/keys", next.as_deref()))
        p.muted { (ctx.t("启用新版本与销毁旧版本须由另一名安全保密员在“双人复核”中批准。", "Activating a version and destroying one need a second officer's approval under Dual control.")) }
    };
    ok(page(ctx, ctx.t("密钥", "Keys"), body))
}

pub(crate) async fn rotate(ctx: &Ctx, name: &str) -> Reply {
    let name = name.to_string();
    let v = with(ctx, move |r, p| r.dual_control().rotate(p, &name)).await?;
    let body = html! {
        div.notice { p { (ctx.t("已生成新版本 ", "New version ")) "v" (v.version) (ctx.t("（待启用）。", " (pending activation).")) } }
        @if let Some(csr) = &v.csr { details { summary { "CSR" } pre.mono { (csr) } } }
        p { a href="/console/keys" { (ctx.t("返回密钥", "Back to the keys")) } }
    };
    Ok(Answer::Page(StatusCode::CREATED, page(ctx, ctx.t("密钥轮换", "Rotation"), body)))
}

/// A PIN change asked for: it waits in the dual-control inbox. The PIN is never shown or logged.
pub(crate) async fn change_pin(ctx: &Ctx, f: Form) -> Reply {
    if f.text("new_pin") != f.text("again") {
        return Err(Refusal::bad(ctx.t("两次输入的 PIN 不一致", "the two PINs differ")));
    }
    let pin = crate::token::Pin::from_text(f.text("new_pin")).map_err(|e| Refusal::bad(e.to_string()))?;
    drop(f);
    let _ = with(ctx, move |r, p| r.dual_control().request_pin_change(p, pin)).await?;
    Ok(Answer::Redirect("/console/requests".into()))
}

pub(crate) async fn activate(ctx: &Ctx, name: &str, f: Form) -> Reply {
    let (name, version) = (name.to_string(), f.number::<u32>("version", "version")?.unwrap_or(0));
    match with(ctx, move |r, p| r.dual_control().activate(p, &name, version)).await? {
        Ok(_) => Ok(Answer::Redirect("/console/keys".into())),
        Err(_) => Ok(Answer::Redirect("/console/requests".into())),
    }
}

pub(crate) async fn destroy(ctx: &Ctx, name: &str, f: Form) -> Reply {
    let (name, version) = (name.to_string(), f.number::<u32>("version", "version")?.unwrap_or(0));
    let _ = with(ctx, move |r, p| r.dual_control().request_destroy(p, &name, version)).await?;
    Ok(Answer::Redirect("/console/requests".into()))
}

/// The dual-control inbox: requests another administrator opened, to approve.
pub(crate) async fn requests(ctx: &Ctx, q: &Query) -> Reply {
    let cursor = q.get("cursor").map(str::to_string);
    let (list, next) = with(ctx, move |r, p| r.dual_control().requests_page(p, cursor.as_deref(), 100)).await?;
    let now = crate::seal::now_ms();
    let body = html! {
        table id="requests" {
            tr { th { (ctx.t("请求", "Request")) } th { (ctx.t("事项", "What")) } th { (ctx.t("对象", "On")) } th { (ctx.t("申请人", "By")) }
                 th { (ctx.t("时间", "When")) } th { (ctx.t("状态", "State")) } th {} }
            @for r in &list {
                tr data-request=(r.id) {
                    td { code { (r.id) } }
                    td { (format!("{:?}", r.action).to_lowercase()) }
                    td { code { (r.key) } @if r.version > 0 { " v" (r.version) }
                         @if let Some(a) = &r.account { " · " (view::role(ctx.lang, a.role)) @if a.disabled { " · " (ctx.t("停用", "disabled")) } } }
                    td { (r.requested_by) }
                    td { (when(ctx, r.created_ms)) }
                    td { @match r.state {
                        RequestState::Done => { span.badge.ok { (ctx.t("已批准", "approved")) } @if let Some(b) = &r.approved_by { " " (b) } },
                        RequestState::Pending if now > r.expires_ms => span.badge.bad { (ctx.t("已过期", "expired")) },
                        RequestState::Pending => span.badge.warn { (ctx.t("待复核", "waiting")) },
                    } }
                    td { @if r.state == RequestState::Pending && now <= r.expires_ms && r.requested_by != ctx.p.account {
                        form.inline method="post" action={"/console/requests/" (encode(&r.id)) "/approve"} {
                            (csrf(ctx)) button.primary type="submit" { (ctx.t("复核批准", "Approve")) } }
                    } }
                }
            }
        }
        @if list.is_empty() { p.muted { (ctx.t("没有请求。", "No request.")) } }
        (pager(ctx, "/console/requests", next.as_deref()))
    };
    ok(page(ctx, ctx.t("双人复核", "Dual control"), body))
}

pub(crate) async fn approve(ctx: &Ctx, id: &str) -> Reply {
    let id = id.to_string();
    let _ = with(ctx, move |r, p| r.dual_control().approve_request(p, &id)).await?;
    Ok(Answer::Redirect("/console/requests".into()))
}

const ROLES: [(Role, &str); 6] = [
    (Role::UnitAdmin, "unit_admin"),
    (Role::App, "app"),
    (Role::Issuer, "issuer"),
    (Role::Auditor, "auditor"),
    (Role::Secofficer, "secofficer"),
    (Role::Sysadmin, "sysadmin"),
];

/// Accounts, the certificates bound to them, and a form for a new one.
pub(crate) async fn accounts(ctx: &Ctx, q: &Query) -> Reply {
    let cursor = q.get("cursor").map(str::to_string);
    let (list, next) = with(ctx, move |r, p| r.directory().accounts_page(p, cursor.as_deref(), 100)).await?;
    let body = html! {
        table id="accounts" {
            tr { th { (ctx.t("账户", "Account")) } th { (ctx.t("角色", "Role")) } th { (ctx.t("单位", "Unit")) }
                 th { (ctx.t("绑定证书 (SHA-256)", "Certificates (SHA-256)")) } th { (ctx.t("创建", "Created")) } th {} }
            @for a in &list {
                tr data-account=(a.name) {
                    td { (a.name) @if a.disabled { " " span.badge.bad { (ctx.t("已停用", "disabled")) } } }
                    td { (view::role(ctx.lang, a.role)) }
                    td { (a.unit.as_deref().unwrap_or("")) }
                    td { @for (i, fp) in a.fingerprints.iter().enumerate() {
                        div { code { (fp.get(..16).unwrap_or(fp)) "…" } @if let Some(s) = a.subjects.get(i) { " " span.muted { (s) } } } } }
                    td { (a.created_by) br; span.muted { (when(ctx, a.created_ms)) } }
                    td { @if !a.disabled && a.name != ctx.p.account {
                        form.inline method="post" action={"/console/accounts/" (encode(&a.name)) "/disable"} {
                            (csrf(ctx)) button.danger type="submit" { (ctx.t("停用", "Disable")) } }
                        details {
                            summary { (ctx.t("绑定新证书", "Bind a new certificate")) }
                            form method="post" action={"/console/accounts/" (encode(&a.name)) "/certificate"} enctype="multipart/form-data" {
                                (csrf(ctx))
                                input type="file" name="certificate" accept=".pem,.crt,.cer" required;
                                label { input type="checkbox" name="keep"; " " (ctx.t("保留原证书", "Keep the old ones")) }
                                button.primary type="submit" { (ctx.t("绑定", "Bind")) }
                            }
                        }
                    } }
                }
            }
        }
        (pager(ctx, "/console/accounts", next.as_deref()))
        h2 { (ctx.t("新建账户", "New account")) }
        form.box method="post" action="/console/accounts" enctype="multipart/form-data" {
            (csrf(ctx))
            label { span { (ctx.t("账户名", "Name")) } input type="text" name="name" required; }
            label { span { (ctx.t("角色", "Role")) } select name="role" { @for (r, n) in ROLES { option value=(n) { (view::role(ctx.lang, r)) } } } }
            label { span { (ctx.t("单位", "Unit")) } input type="text" name="unit"; }
            label { span { (ctx.t("证书文件 (PEM)", "Certificate (PEM file)")) } input type="file" name="certificate" accept=".pem,.crt,.cer"; }
            label { span { (ctx.t("或粘贴证书", "or paste it")) } textarea name="certificate_text" {} }
            label { span { (ctx.t("密钥（应用，逗号分隔）", "Keys (applications, comma-separated)")) } input type="text" name="keys"; }
            button.primary type="submit" { (ctx.t("创建", "Create")) }
        }
        p.muted { (ctx.t("三员账户的新建与变更须由另一名管理员在“双人复核”中批准。", "Administrators' accounts are created and changed with a second administrator's approval under Dual control.")) }
    };
    ok(page(ctx, ctx.t("账户", "Accounts"), body))
}

pub(crate) async fn create_account(ctx: &Ctx, f: Form) -> Reply {
    let role = ROLES
        .iter()
        .find(|(_, n)| *n == f.text("role"))
        .map(|(r, _)| *r)
        .ok_or_else(|| Refusal::bad(format!("unknown role '{}'", f.text("role"))))?;
    let pem = match f.file("certificate") {
        Some(up) => {
            Some(String::from_utf8(up.bytes.to_vec()).map_err(|_| Refusal::bad("the certificate is not PEM text"))?)
        }
        None => f.opt("certificate_text"),
    };
    let spec = AccountSpec {
        name: f.need("name", ctx.t("账户名", "the name"))?,
        role,
        unit: f.opt("unit"),
        fingerprints: Vec::new(),
        certificates: pem.into_iter().collect(),
        keys: f.text("keys").split(',').map(str::trim).filter(|k| !k.is_empty()).map(str::to_string).collect(),
    };
    match with(ctx, move |r, p| r.directory().create_account(p, spec)).await? {
        AccountChange::Done(_) => Ok(Answer::Redirect("/console/accounts".into())),
        AccountChange::AwaitingApproval(_) => Ok(Answer::Redirect("/console/requests".into())),
    }
}

/// A new certificate bound to an account (a person's renewed certificate, a new UKey), in place
/// of its old ones or beside them. An administrator's account changes with a second administrator.
pub(crate) async fn bind_certificate(ctx: &Ctx, name: &str, f: Form) -> Reply {
    let up =
        f.file("certificate").ok_or_else(|| Refusal::bad(ctx.t("请选择证书文件", "choose the certificate file")))?;
    let cert =
        crate::formats::x509::Cert::parse(&up.bytes).map_err(|e| Refusal::bad(format!("the certificate: {e}")))?;
    let (name, keep, fingerprint) = (name.to_string(), f.checked("keep"), cert.fingerprint());
    let change = with(ctx, move |r, p| {
        let mut fingerprints = vec![fingerprint];
        if keep {
            let current = r.directory().accounts(p)?.into_iter().find(|a| a.name == name);
            fingerprints.extend(current.map(|a| a.fingerprints).unwrap_or_default());
        }
        let up = AccountUpdate { fingerprints: Some(fingerprints), ..Default::default() };
        r.directory().update_account(p, &name, up)
    })
    .await?;
    match change {
        AccountChange::Done(_) => Ok(Answer::Redirect("/console/accounts".into())),
        AccountChange::AwaitingApproval(_) => Ok(Answer::Redirect("/console/requests".into())),
    }
}

pub(crate) async fn disable_account(ctx: &Ctx, name: &str) -> Reply {
    let name = name.to_string();
    let up = AccountUpdate { disabled: Some(true), ..Default::default() };
    match with(ctx, move |r, p| r.directory().update_account(p, &name, up)).await? {
        AccountChange::Done(_) => Ok(Answer::Redirect("/console/accounts".into())),
        AccountChange::AwaitingApproval(_) => Ok(Answer::Redirect("/console/requests".into())),
    }
}

/// Units, and a form for a new one.
pub(crate) async fn units(ctx: &Ctx, q: &Query) -> Reply {
    let cursor = q.get("cursor").map(str::to_string);
    let (list, next) = with(ctx, move |r, p| r.directory().units_page(p, cursor.as_deref(), 100)).await?;
    let body = html! {
        table id="units" {
            tr { th { (ctx.t("单位编码", "Code")) } th { (ctx.t("名称", "Name")) } th { (ctx.t("上级单位", "Parent")) } th { (ctx.t("创建", "Created")) } }
            @for u in &list { tr { td { code { (u.id) } } td { (u.name) } td { (u.parent.as_deref().unwrap_or("")) } td { (when(ctx, u.created_ms)) } } }
        }
        (pager(ctx, "/console/units", next.as_deref()))
        h2 { (ctx.t("新建单位", "New unit")) }
        form.box method="post" action="/console/units" {
            (csrf(ctx))
            label { span { (ctx.t("单位编码", "Code")) } input type="text" name="id" required; }
            label { span { (ctx.t("名称", "Name")) } input type="text" name="name" required; }
            label { span { (ctx.t("上级单位", "Parent")) } input type="text" name="parent"; }
            button.primary type="submit" { (ctx.t("创建", "Create")) }
        }
    };
    ok(page(ctx, ctx.t("单位", "Units"), body))
}

pub(crate) async fn create_unit(ctx: &Ctx, f: Form) -> Reply {
    let spec = UnitSpec {
        id: f.need("id", ctx.t("单位编码", "the code"))?,
        name: f.need("name", ctx.t("名称", "the name"))?,
        parent: f.opt("parent"),
    };
    let _ = with(ctx, move |r, p| r.directory().create_unit(p, spec)).await?;
    Ok(Answer::Redirect("/console/units".into()))
}
