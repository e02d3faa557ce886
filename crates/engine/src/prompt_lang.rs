//! The language of the prompts a call hears, picked once where an application starts: the
//! calling extension's own setting, else its tenant's default, else the node's
//! `prompts.language`. A caller from a trunk is not an extension: it hears the called tenant's
//! default. The media side falls back to the other language for a prompt missing in this one.

use crate::Engine;
use crate::b2bua::Origin;
use crate::db::Direction;

/// The first set of `ext`, `tenant`, `global` that names a known language (`en` when none
/// does).
pub fn pick(ext: Option<&str>, tenant: Option<&str>, global: &str) -> String {
    [ext, tenant, Some(global)]
        .into_iter()
        .flatten()
        .find(|l| crate::settings::PROMPT_LANGUAGES.contains(l))
        .unwrap_or(crate::settings::PROMPT_LANGUAGES[0])
        .to_string()
}

impl Engine {
    /// The prompt language for a call of `tenant` from extension `caller_ext` of that tenant
    /// (`None`: an outside caller, who hears the tenant's default).
    pub fn prompt_language(&self, tenant: i64, caller_ext: Option<&str>) -> String {
        let ext = caller_ext
            .and_then(|n| self.snap.extensions.get(&(tenant, n.to_string())))
            .map(|e| e.language.as_str());
        let tenant_lang = self.snap.tenants.languages.get(&tenant).map(String::as_str);
        pick(ext, tenant_lang, &self.snap.settings.prompt_language)
    }

    /// [`Engine::prompt_language`] for the caller of a call: an extension unless it came in
    /// from a trunk.
    pub(crate) fn caller_language(
        &self,
        tenant: i64,
        caller: &str,
        direction: Direction,
    ) -> String {
        let ext = (direction != Direction::Inbound).then_some(caller);
        self.prompt_language(tenant, ext)
    }

    /// [`Engine::caller_language`] for a call about to start.
    pub(crate) fn origin_language(&self, o: &Origin) -> String {
        self.caller_language(o.tenant, &o.caller, o.route.direction)
    }
}

#[cfg(test)]
mod tests {
    use super::pick;

    #[test]
    fn the_nearest_setting_wins_and_empty_inherits() {
        assert_eq!(pick(Some("ja"), Some("en"), "en"), "ja");
        assert_eq!(pick(Some(""), Some("ja"), "en"), "ja");
        assert_eq!(pick(None, Some("ja"), "en"), "ja");
        assert_eq!(pick(Some(""), Some(""), "ja"), "ja");
        assert_eq!(pick(None, None, "en"), "en");
        // A value this build does not know is skipped, never played as a language.
        assert_eq!(pick(Some("fr"), Some("xx"), "ja"), "ja");
        assert_eq!(pick(None, None, "??"), "en");
    }
}
