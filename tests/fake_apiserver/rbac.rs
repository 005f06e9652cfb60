//! What the API server's authorizer does for one Role bound to one
//! ServiceAccount: a request must carry that account's bearer token (else
//! 401), and its verb (`get`, `list`, `watch`) on its resource, in its API
//! group and in the Role's namespace, must be granted by one of the Role's
//! rules (else 403, with the message the real server gives).

use serde_json::Value;

use super::store::Kind;

#[derive(Clone, Debug)]
pub struct Rule {
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Rbac {
    pub token: String,
    /// `system:serviceaccount:<ns>:<name>`.
    pub user: String,
    pub namespace: String,
    pub rules: Vec<Rule>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl Rbac {
    /// The policy of a rendered `Role` for the ServiceAccount `sa` in its
    /// namespace, which authenticates with `token`.
    pub fn from_role(role: &Value, sa: &str, token: &str) -> Rbac {
        assert_eq!(role["kind"], "Role", "a Role object");
        let namespace = role["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let rules = role["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .map(|r| Rule {
                api_groups: strings(&r["apiGroups"]),
                resources: strings(&r["resources"]),
                verbs: strings(&r["verbs"]),
            })
            .collect();
        Rbac {
            token: token.to_owned(),
            user: format!("system:serviceaccount:{namespace}:{sa}"),
            namespace,
            rules,
        }
    }

    /// `Ok` or the (code, reason, message) the real server answers.
    pub fn check(
        &self,
        authorization: Option<&str>,
        verb: &str,
        kind: Kind,
        namespace: Option<&str>,
    ) -> Result<(), (u16, &'static str, String)> {
        if authorization != Some(format!("Bearer {}", self.token).as_str()) {
            return Err((401, "Unauthorized", "Unauthorized".to_owned()));
        }
        let (group, resource) = match kind {
            Kind::Pod => ("", "pods"),
            Kind::EndpointSlice => ("discovery.k8s.io", "endpointslices"),
        };
        let granted = namespace == Some(self.namespace.as_str())
            && self.rules.iter().any(|r| {
                let any = |v: &[String], x: &str| v.iter().any(|s| s == x || s == "*");
                any(&r.api_groups, group) && any(&r.resources, resource) && any(&r.verbs, verb)
            });
        if granted {
            return Ok(());
        }
        let scope = match namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_owned(),
        };
        Err((
            403,
            "Forbidden",
            format!(
                "{resource} is forbidden: User \"{}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}",
                self.user
            ),
        ))
    }
}
