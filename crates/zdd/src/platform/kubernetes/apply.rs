//! Requests to the cluster: typed and custom-resource `Api`s in the run's namespace, and
//! server-side apply (field manager `zdd`, forced: zdd owns what it sets). A change is recorded in
//! the ledger; a failure says where it happened and what the run had changed.

use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::Target;
use super::ledger::Ledger;
use super::objects::FIELD_MANAGER;
use super::routers::Crd;
use crate::platform::{PlatformError, Result};

pub struct Cluster {
    pub client: Client,
    pub target: Target,
    pub ledger: Ledger,
}

impl Cluster {
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.target.namespace)
    }

    pub fn custom_api(&self, crd: &Crd) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &self.target.namespace,
            &crd.api_resource(),
        )
    }

    /// The platform's error for `verb` on `resource` (named `name`) failing with `source`.
    pub fn fail(
        &self,
        verb: &'static str,
        resource: &str,
        name: Option<&str>,
        source: kube::Error,
    ) -> PlatformError {
        self.ledger
            .explain(self.target.error(verb, resource, name, source))
    }

    /// The object `name`, or `None` when it does not exist.
    pub async fn get<K>(&self, api: &Api<K>, resource: &str, name: &str) -> Result<Option<K>>
    where
        K: Clone + DeserializeOwned + std::fmt::Debug,
    {
        let object = api.get_opt(name).await;
        object.map_err(|e| self.fail("get", resource, Some(name), e))
    }

    /// Server-side apply of `object` (named in its metadata), recorded as `change`.
    pub async fn apply<K>(
        &mut self,
        api: &Api<K>,
        resource: &str,
        object: &Value,
        change: String,
    ) -> Result<()>
    where
        K: Clone + DeserializeOwned + std::fmt::Debug,
    {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api.patch(name, &params, &Patch::Apply(object)).await {
            Ok(_) => {
                self.ledger.record(change);
                Ok(())
            }
            Err(e) => Err(self.fail("patch", resource, Some(name), e)),
        }
    }

    /// Deletes `name`, recorded as `change`; `false` when it did not exist (nothing to do).
    pub async fn delete<K>(
        &mut self,
        api: &Api<K>,
        resource: &str,
        name: &str,
        change: String,
    ) -> Result<bool>
    where
        K: Clone + DeserializeOwned + std::fmt::Debug,
    {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                self.ledger.record(change);
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(e) => Err(self.fail("delete", resource, Some(name), e)),
        }
    }
}
