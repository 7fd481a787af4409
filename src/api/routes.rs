//! The route table: every route the API serves, once. Each entry names its method, its path pattern
//! (which is also its metric label, so ids in paths make no new series) and the operation it runs.
//! A path that matches a pattern under another method is 405, and so is any other path under one of
//! the API's families (`/v1/sign/…`, `/v1/seals/…`, …); a path that matches nothing is 404. Both of
//! those are counted as `unmatched`.

use hyper::Method;

/// An operation of the API. `api::dispatch` maps each to its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `GET /healthz`.
    Healthz,
    /// `GET /readyz`.
    Readyz,
    /// `GET /metrics`.
    Metrics,
    /// `POST /v1/sign`.
    Sign,
    /// `POST /v1/sign/batch`.
    SignBatch,
    /// `POST /v1/sign/cms`.
    SignCms,
    /// `POST /v1/verify`.
    Verify,
    /// `POST /v1/verify/batch`.
    VerifyBatch,
    /// `POST /v1/verify/cms`.
    VerifyCms,
    /// `POST /v1/verify/ses`.
    VerifySes,
    /// `POST /v1/verify/seal`.
    VerifySeal,
    /// `POST /v1/verify/ofd`: every signature of an OFD package.
    VerifyOfd,
    /// `GET /v1/whoami`.
    Whoami,
    /// `GET /v1/openapi.yaml`: the API's contract.
    OpenApi,
    /// `GET /v1/keys`.
    Keys,
    /// `GET /v1/keys/{id}`.
    Key,
    /// `GET /v1/audit/verify`.
    AuditVerify,
    /// `GET /v1/audit/records`.
    AuditRecords,
    /// `GET /v1/audit/export`.
    AuditExport,
    /// `GET /v1/admin/backup`.
    Backup,
    /// `GET /v1/ca`.
    Ca,
    /// `POST /v1/ca/issue`.
    CaIssue,
    /// `GET /v1/seals`.
    ListSeals,
    /// `POST /v1/seals`.
    Apply,
    /// `GET /v1/seals/{id}`.
    GetSeal,
    /// `POST /v1/seals/{id}/policy`.
    SetPolicy,
    /// `GET /v1/seals/{id}/csr`.
    SealCsr,
    /// `GET /v1/seals/{id}/ses`.
    SealSes,
    /// `POST /v1/seals/{id}/sign-ses`.
    SignSes,
    /// `POST /v1/seals/{id}/seal-ofd`: an OFD document sealed.
    SealOfd,
    /// `POST /v1/seals/{id}/certificate`.
    ImportCertificate,
    /// `GET /v1/seals/{id}/grants`.
    ListGrants,
    /// `POST /v1/seals/{id}/grants`.
    Grant,
    /// `DELETE /v1/seals/{id}/grants/{account}`.
    Ungrant,
    /// `POST /v1/seals/{id}/approvals`.
    IssueTicket,
    /// `GET /v1/seals/{id}/usage`.
    Usage,
    /// `GET /v1/accounts/{name}/usage`.
    AccountUsage,
    /// `POST /v1/seals/{id}/{action}`: a lifecycle transition.
    Transition,
    /// `GET /v1/filings`.
    ListFilings,
    /// `GET /v1/filings/export`.
    ExportFilings,
    /// `POST /v1/filings/{id}/ack`.
    AckFiling,
    /// `GET /v1/admin/accounts`.
    ListAccounts,
    /// `POST /v1/admin/accounts`.
    CreateAccount,
    /// `GET /v1/admin/accounts/{name}`.
    GetAccount,
    /// `POST /v1/admin/accounts/{name}`.
    UpdateAccount,
    /// `DELETE /v1/admin/accounts/{name}`.
    DisableAccount,
    /// `GET /v1/admin/keys`.
    ListApplianceKeys,
    /// `POST /v1/admin/keys/{name}/rotate`.
    RotateKey,
    /// `POST /v1/admin/keys/{name}/activate`.
    ActivateKey,
    /// `POST /v1/admin/keys/{name}/destroy`.
    DestroyKey,
    /// `POST /v1/admin/token/pin`.
    ChangePin,
    /// `GET /v1/admin/requests`.
    ListRequests,
    /// `POST /v1/admin/requests/{id}/approve`.
    ApproveRequest,
    /// `POST /v1/tsa`: an RFC 3161 time-stamp.
    Tsa,
    /// `GET /v1/seal-status/{id}`: a seal's state at a time, JSON or signed DER.
    SealStatus,
    /// `GET /v1/admin/units`.
    ListUnits,
    /// `POST /v1/admin/units`.
    CreateUnit,
}

/// One route.
#[derive(Debug)]
pub struct Route {
    /// Its method.
    pub method: Method,
    /// Its path pattern; `{name}` matches one segment. Also its metric label.
    pub path: &'static str,
    /// What it runs.
    pub op: Op,
}

const fn route(method: Method, path: &'static str, op: Op) -> Route {
    Route { method, path, op }
}

const fn probe(path: &'static str, op: Op) -> Route {
    Route { method: Method::GET, path, op }
}

/// Every route. Where two patterns match a path, the first wins (`/v1/seals/{id}/{action}` is last
/// among the seal routes).
pub static ROUTES: &[Route] = &[
    probe("/healthz", Op::Healthz),
    probe("/readyz", Op::Readyz),
    probe("/metrics", Op::Metrics),
    route(Method::POST, "/v1/sign", Op::Sign),
    route(Method::POST, "/v1/sign/batch", Op::SignBatch),
    route(Method::POST, "/v1/sign/cms", Op::SignCms),
    route(Method::POST, "/v1/verify", Op::Verify),
    route(Method::POST, "/v1/verify/batch", Op::VerifyBatch),
    route(Method::POST, "/v1/verify/cms", Op::VerifyCms),
    route(Method::POST, "/v1/verify/ses", Op::VerifySes),
    route(Method::POST, "/v1/verify/seal", Op::VerifySeal),
    route(Method::POST, "/v1/verify/ofd", Op::VerifyOfd),
    route(Method::GET, "/v1/whoami", Op::Whoami),
    route(Method::GET, "/v1/openapi.yaml", Op::OpenApi),
    route(Method::GET, "/v1/keys", Op::Keys),
    route(Method::GET, "/v1/keys/{id}", Op::Key),
    route(Method::GET, "/v1/audit/verify", Op::AuditVerify),
    route(Method::GET, "/v1/audit/records", Op::AuditRecords),
    route(Method::GET, "/v1/audit/export", Op::AuditExport),
    route(Method::GET, "/v1/admin/backup", Op::Backup),
    route(Method::POST, "/v1/tsa", Op::Tsa),
    route(Method::GET, "/v1/seal-status/{id}", Op::SealStatus),
    route(Method::GET, "/v1/ca", Op::Ca),
    route(Method::POST, "/v1/ca/issue", Op::CaIssue),
    route(Method::GET, "/v1/seals", Op::ListSeals),
    route(Method::POST, "/v1/seals", Op::Apply),
    route(Method::GET, "/v1/seals/{id}", Op::GetSeal),
    route(Method::POST, "/v1/seals/{id}/policy", Op::SetPolicy),
    route(Method::GET, "/v1/seals/{id}/csr", Op::SealCsr),
    route(Method::GET, "/v1/seals/{id}/ses", Op::SealSes),
    route(Method::POST, "/v1/seals/{id}/sign-ses", Op::SignSes),
    route(Method::POST, "/v1/seals/{id}/seal-ofd", Op::SealOfd),
    route(Method::POST, "/v1/seals/{id}/certificate", Op::ImportCertificate),
    route(Method::GET, "/v1/seals/{id}/grants", Op::ListGrants),
    route(Method::POST, "/v1/seals/{id}/grants", Op::Grant),
    route(Method::DELETE, "/v1/seals/{id}/grants/{account}", Op::Ungrant),
    route(Method::POST, "/v1/seals/{id}/approvals", Op::IssueTicket),
    route(Method::GET, "/v1/seals/{id}/usage", Op::Usage),
    route(Method::GET, "/v1/accounts/{name}/usage", Op::AccountUsage),
    route(Method::POST, "/v1/seals/{id}/{action}", Op::Transition),
    route(Method::GET, "/v1/filings", Op::ListFilings),
    route(Method::GET, "/v1/filings/export", Op::ExportFilings),
    route(Method::POST, "/v1/filings/{id}/ack", Op::AckFiling),
    route(Method::GET, "/v1/admin/accounts", Op::ListAccounts),
    route(Method::POST, "/v1/admin/accounts", Op::CreateAccount),
    route(Method::GET, "/v1/admin/accounts/{name}", Op::GetAccount),
    route(Method::POST, "/v1/admin/accounts/{name}", Op::UpdateAccount),
    route(Method::DELETE, "/v1/admin/accounts/{name}", Op::DisableAccount),
    route(Method::GET, "/v1/admin/keys", Op::ListApplianceKeys),
    route(Method::POST, "/v1/admin/keys/{name}/rotate", Op::RotateKey),
    route(Method::POST, "/v1/admin/keys/{name}/activate", Op::ActivateKey),
    route(Method::POST, "/v1/admin/keys/{name}/destroy", Op::DestroyKey),
    route(Method::POST, "/v1/admin/token/pin", Op::ChangePin),
    route(Method::GET, "/v1/admin/requests", Op::ListRequests),
    route(Method::POST, "/v1/admin/requests/{id}/approve", Op::ApproveRequest),
    route(Method::GET, "/v1/admin/units", Op::ListUnits),
    route(Method::POST, "/v1/admin/units", Op::CreateUnit),
];

/// What a request's method and path resolve to.
#[derive(Debug)]
pub enum Resolved<'p> {
    /// A route, with the path's `{…}` segments in order.
    Found(&'static Route, Vec<&'p str>),
    /// The path has routes, none for this method (the first such route's label).
    MethodNotAllowed(&'static str),
    /// No route has this path.
    NotFound,
}

impl Resolved<'_> {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Resolved::Found(r, _) => r.path,
            Resolved::MethodNotAllowed(label) => label,
            Resolved::NotFound => "unmatched",
        }
    }
}

/// The routes whose pattern fits `path`, the most specific only: where `/v1/seals/{id}/csr` fits,
/// `/v1/seals/{id}/{action}` does not compete (so `POST …/csr` is 405, and `Allow` says `GET`).
fn candidates(path: &str) -> impl Iterator<Item = (&'static Route, Vec<&str>)> {
    let fitting: Vec<_> = ROUTES.iter().filter_map(|r| matches(r.path, path).map(|p| (r, p))).collect();
    let best = fitting.iter().map(|(r, p)| literals(r.path, p)).max().unwrap_or(0);
    fitting.into_iter().filter(move |(r, p)| literals(r.path, p) == best)
}

fn literals(pattern: &str, params: &[&str]) -> usize {
    pattern.split('/').count() - params.len()
}

/// Finds the route for `method` and `path`.
pub fn resolve<'p>(method: &Method, path: &'p str) -> Resolved<'p> {
    let mut other_method = None;
    for (r, params) in candidates(path) {
        if r.method == *method {
            return Resolved::Found(r, params);
        }
        let _ = other_method.get_or_insert(r.path);
    }
    match other_method {
        Some(label) => Resolved::MethodNotAllowed(label),
        None if FAMILIES.iter().any(|f| path.strip_prefix(f).is_some_and(|rest| rest.starts_with('/'))) => {
            Resolved::MethodNotAllowed("unmatched")
        }
        None => Resolved::NotFound,
    }
}

/// The methods with a route for `path`, for a 405's `Allow` header (empty under a family with no
/// route for the path: nothing is allowed there).
pub fn allowed(path: &str) -> String {
    let mut methods: Vec<&str> = candidates(path).map(|(r, _)| r.method.as_str()).collect();
    methods.dedup();
    methods.join(", ")
}

/// The API's route families: any other path under one of them is 405, as it always was.
const FAMILIES: &[&str] = &[
    "/v1/sign",
    "/v1/verify",
    "/v1/keys",
    "/v1/audit",
    "/v1/seals",
    "/v1/filings",
    "/v1/admin",
    "/v1/ca",
    "/v1/seal-status",
];

/// The `{…}` segments of `path` if it fits `pattern`.
fn matches<'p>(pattern: &str, path: &'p str) -> Option<Vec<&'p str>> {
    let mut params = Vec::new();
    let mut segments = path.strip_prefix('/')?.split('/');
    for want in pattern.trim_start_matches('/').split('/') {
        let got = segments.next()?;
        if want.starts_with('{') {
            // An empty id is still an id: it names nothing, and the handler says so.
            params.push(got);
        } else if want != got {
            return None;
        }
    }
    segments.next().is_none().then_some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_their_route_and_label() {
        let Resolved::Found(r, p) = resolve(&Method::POST, "/v1/seals/abc/sign-ses") else { panic!() };
        assert_eq!((r.op, r.path, p), (Op::SignSes, "/v1/seals/{id}/sign-ses", vec!["abc"]));
        let Resolved::Found(r, p) = resolve(&Method::POST, "/v1/seals/abc/freeze") else { panic!() };
        assert_eq!((r.op, p), (Op::Transition, vec!["abc", "freeze"]));
        let Resolved::Found(r, p) = resolve(&Method::DELETE, "/v1/seals/s/grants/app") else { panic!() };
        assert_eq!((r.op, p), (Op::Ungrant, vec!["s", "app"]));
        assert!(matches!(resolve(&Method::GET, "/v1/sign"), Resolved::MethodNotAllowed("/v1/sign")));
        assert!(matches!(resolve(&Method::GET, "/v1/nothing"), Resolved::NotFound));
        assert!(matches!(resolve(&Method::GET, "/healthz/"), Resolved::NotFound));
        // Under a family, a path with no route is 405; an empty id is an id.
        assert!(matches!(resolve(&Method::GET, "/v1/seals/x/a/b/c"), Resolved::MethodNotAllowed("unmatched")));
        assert!(matches!(resolve(&Method::GET, "/v1/sign/foo"), Resolved::MethodNotAllowed("unmatched")));
        let Resolved::Found(r, p) = resolve(&Method::GET, "/v1/seals//usage") else { panic!() };
        assert_eq!((r.op, p), (Op::Usage, vec![""]));
        assert_eq!(resolve(&Method::GET, "/v1/nothing").label(), "unmatched");
        assert_eq!(allowed("/v1/sign"), "POST");
        assert_eq!(allowed("/v1/admin/accounts"), "GET, POST");
        assert_eq!(allowed("/v1/sign/foo"), "");
        // A literal segment wins over a parameter: POST …/csr is not a seal action named "csr".
        assert_eq!(allowed("/v1/seals/x/csr"), "GET");
        assert!(matches!(resolve(&Method::POST, "/v1/seals/x/csr"), Resolved::MethodNotAllowed("/v1/seals/{id}/csr")));
        assert_eq!(allowed("/v1/seals/x/freeze"), "POST");
    }

    #[test]
    fn every_route_is_reachable_and_named_once() {
        for (i, r) in ROUTES.iter().enumerate() {
            let path = r.path.replace("{id}", "x1").replace("{name}", "n1").replace("{account}", "a1");
            let path = path.replace("{action}", "freeze");
            let Resolved::Found(found, _) = resolve(&r.method, &path) else { panic!("{} unreachable", r.path) };
            assert_eq!(found.op, r.op, "{} {} is shadowed by {}", r.method, r.path, found.path);
            assert!(ROUTES[..i].iter().all(|o| o.op != r.op), "{:?} has two routes", r.op);
        }
    }
}
