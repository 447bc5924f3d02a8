//! Who is asking. The web layer authenticates the status page, history pages and `/api/v1/*`
//! (a `basic_auth_users` login or the `ROUTER_API_TOKEN` bearer) and inserts a [`Principal`]
//! into the request's extensions, so handlers record *who* acknowledged or silenced without
//! trusting a name typed into a form.

/// How the caller proved who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// A user of the web config's `basic_auth_users` (a human in a browser).
    BasicAuth,
    /// The `ROUTER_API_TOKEN` bearer (a machine).
    ApiToken,
}

/// The authenticated caller of a protected route (a request extension).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The basic-auth user name, or `"api-token"` for the bearer.
    pub name: String,
    pub method: AuthMethod,
}
