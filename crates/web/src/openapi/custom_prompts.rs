//! The custom prompts (`/custom-prompts/...`) and mailbox greetings
//! (`/voicemail/{number}/greetings/...`) part of the OpenAPI document.

use serde_json::{Value, json};

use super::prompts::{self, download, items, wav};
use super::{ok_json, op, path_param, query};

fn variant() -> Value {
    json!({ "type": "object", "required": ["lang", "source", "duration_s", "present", "updated_at"], "properties": {
        "lang": { "type": "string", "enum": ["any", "en", "ja"], "description": "callers of every language, or of this one" },
        "source": { "type": "string", "enum": ["uploaded", "recorded"] },
        "original_name": { "type": "string" },
        "original_format": { "type": "string", "description": "WAV, MP3, Ogg Vorbis … as uploaded" },
        "duration_s": { "type": "number" },
        "present": { "type": "boolean", "description": "false: the file is gone (the error tone plays until uploaded again)" },
        "updated_at": { "type": "string", "format": "date-time" } } })
}

fn custom_prompt() -> Value {
    json!({ "type": "object", "required": ["name", "description", "variants", "used_by"], "properties": {
        "name": { "type": "string", "pattern": "^[a-z][a-z0-9-]{0,39}$", "description": "what an IVR menu's greeting names; never a catalogue prompt id" },
        "description": { "type": "string" },
        "variants": { "type": "array", "items": variant() },
        "used_by": { "type": "array", "items": { "type": "string" }, "description": "IVR menus that play it" } } })
}

fn greeting() -> Value {
    json!({ "type": "object", "required": ["kind", "present"], "properties": {
        "kind": { "type": "string", "enum": ["unavailable", "busy", "name"] },
        "present": { "type": "boolean", "description": "false: the default greeting plays (spoken with the recorded name when there is one)" },
        "duration_s": { "type": "number", "nullable": true } } })
}

/// A prompt upload's body, with the optional `description` field of custom prompts.
fn upload_body(description: bool) -> Value {
    let mut b = prompts::upload_body(false);
    if description {
        b["content"]["multipart/form-data"]["schema"]["properties"]["description"] =
            json!({ "type": "string", "description": "free text (kept when absent)" });
    }
    b
}

fn lang_query(desc: &str) -> Value {
    query(
        "lang",
        json!({ "type": "string", "enum": ["any", "en", "ja"] }),
        desc,
    )
}

pub(super) fn paths(add: &mut impl FnMut(&str, Value)) {
    let name = path_param(
        "name",
        json!({ "type": "string", "pattern": "^[a-z][a-z0-9-]{0,39}$" }),
    );
    let number = path_param("number", json!({ "type": "string" }));
    let kind = path_param(
        "kind",
        json!({ "type": "string", "enum": ["unavailable", "busy", "name"] }),
    );
    let no_content = json!({ "description": "done" });
    add(
        "/custom-prompts",
        json!({ "get": op("The tenant's named custom prompts with their language variants and the IVR menus that play them",
            json!({ "responses": { "200": ok_json("custom prompts", items(custom_prompt())) } }), &[]) }),
    );
    add(
        "/custom-prompts/{name}",
        json!({
            "parameters": [name],
            "get": op("One custom prompt", json!({ "responses": { "200": ok_json("custom prompt", custom_prompt()) } }), &["404"]),
            "put": op("Upload (or replace) one language variant, converted to 16 kHz mono WAV like prompt uploads; 201 when the name is new; refused with the reason (422, field `file`) when unreadable, too long or silent, or (field `name`) for a bad or catalogue name",
                json!({ "parameters": [lang_query("which callers hear this file (default any)")], "requestBody": upload_body(true),
                    "responses": { "200": ok_json("stored", custom_prompt()), "201": ok_json("created", custom_prompt()) } }), &["400", "413", "422", "503"]),
            "patch": op("Rename and/or describe: `{\"name\": \"new-name\", \"description\": \"...\"}`; a rename is refused (409 `in_use`) while an IVR menu plays the prompt, and (409 `conflict`) onto a taken name",
                json!({ "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "properties": {
                    "name": { "type": "string" }, "description": { "type": "string" } } } } } },
                    "responses": { "200": ok_json("updated", custom_prompt()) } }), &["400", "404", "409", "415", "422"]),
            "delete": op("Delete the prompt (every variant), or only its `lang` variant; refused (409 `in_use`, naming the menus) while an IVR menu plays it and no variant would be left",
                json!({ "parameters": [lang_query("only this variant")], "responses": { "204": no_content } }), &["400", "404", "409", "422"])
        }),
    );
    add(
        "/custom-prompts/{name}/audio",
        json!({ "parameters": [name], "get": op("A variant's audio (play or download); without `lang` the first variant there is",
            json!({ "parameters": [lang_query("the variant"), download()], "responses": { "200": wav() } }), &["400", "404", "422"]) }),
    );
    add(
        "/voicemail/{number}/greetings",
        json!({ "parameters": [number], "get": op("The mailbox's greetings: unavailable, busy and name, whether each is recorded and its length",
            json!({ "responses": { "200": ok_json("greetings", items(greeting())) } }), &["404"]) }),
    );
    add(
        "/voicemail/{number}/greetings/{kind}",
        json!({
            "parameters": [number, kind],
            "put": op("Upload the greeting (any format prompt uploads take), converted to 16 kHz mono WAV; refused with the reason (422, field `file`) when unreadable, too long or silent",
                json!({ "requestBody": upload_body(false), "responses": { "200": ok_json("stored", greeting()) } }), &["400", "404", "413", "422", "503"]),
            "delete": op("Delete the greeting: the default one plays again (404 when there is none)",
                json!({ "responses": { "204": no_content } }), &["404"])
        }),
    );
    add(
        "/voicemail/{number}/greetings/{kind}/audio",
        json!({ "parameters": [number, kind], "get": op("The greeting's audio (play or download)",
            json!({ "parameters": [download()], "responses": { "200": wav() } }), &["400", "404"]) }),
    );
}
