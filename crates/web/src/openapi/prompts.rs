//! The prompts and music-on-hold part of the OpenAPI document (`/prompts/...`, `/moh/...`).

use serde_json::{Value, json};

use super::{ok_json, op, path_param, query};

fn prompt() -> Value {
    json!({ "type": "object", "required": ["number", "id", "category", "lang", "text", "present", "source", "default_present"], "properties": {
        "number": { "type": "integer", "description": "stable prompt number (record_prompt, *77 + number)" },
        "id": { "type": "string" },
        "category": { "type": "string", "description": "application: call, ivr, voicemail, conference, park, recording, feature, digit, number, counter, time" },
        "lang": { "type": "string", "enum": ["en", "ja"] },
        "text": { "type": "string", "description": "catalogue text in that language" },
        "present": { "type": "boolean", "description": "a file plays for this language" },
        "source": { "type": "string", "enum": ["default-tts", "uploaded", "recorded", "missing"] },
        "recorded_by": { "type": "string", "description": "the extension that recorded it by phone (source recorded only)" },
        "path": { "type": "string", "nullable": true },
        "duration_s": { "type": "number", "nullable": true },
        "default_present": { "type": "boolean", "description": "a default file exists (what a reset returns to)" } } })
}

fn moh_file() -> Value {
    json!({ "type": "object", "required": ["name", "path", "duration_s"], "properties": {
        "name": { "type": "string" }, "path": { "type": "string" }, "duration_s": { "type": "number" } } })
}

fn moh_class() -> Value {
    json!({ "type": "object", "required": ["name", "scope", "files"], "properties": {
        "name": { "type": "string" },
        "scope": { "type": "string", "enum": ["tenant", "default"], "description": "the tenant's own class, or the installed one" },
        "files": { "type": "array", "items": moh_file() } } })
}

pub(super) fn items(of: Value) -> Value {
    json!({ "type": "object", "required": ["items", "total"], "properties": {
        "items": { "type": "array", "items": of }, "total": { "type": "integer" } } })
}

pub(super) fn upload_body(with_name: bool) -> Value {
    let mut props = json!({ "file": { "type": "string", "format": "binary", "description": "WAV (PCM, float, µ-law, A-law), MP3, Ogg Vorbis, FLAC, AIFF or AU; any rate and channel count; at most 10 minutes and 64 MiB" } });
    if with_name {
        props["name"] = json!({ "type": "string", "description": "file name to store it under (default: the uploaded file's name)" });
    }
    json!({ "required": true, "content": { "multipart/form-data": { "schema": { "type": "object", "required": ["file"], "properties": props } } } })
}

pub(super) fn wav() -> Value {
    json!({ "description": "16 kHz mono 16-bit WAV", "content": { "audio/wav": { "schema": { "type": "string", "format": "binary" } } } })
}

pub(super) fn download() -> Value {
    query(
        "download",
        json!({ "type": "string", "enum": ["1", "true", "yes", "0", "false", "no"] }),
        "1: send as an attachment (download) instead of inline (play)",
    )
}

pub(super) fn paths(add: &mut impl FnMut(&str, Value)) {
    let lang = path_param("lang", json!({ "type": "string", "enum": ["en", "ja"] }));
    let id = path_param(
        "id",
        json!({ "type": "string", "pattern": "^[a-z0-9-]{1,64}$" }),
    );
    let class = path_param(
        "class",
        json!({ "type": "string", "pattern": "^[a-z0-9_-]{1,32}$" }),
    );
    let file = path_param("file", json!({ "type": "string" }));
    add(
        "/prompts",
        json!({ "get": op("Every prompt per language: text, whether a file plays, where it came from (default-tts, uploaded, recorded), path and length",
            json!({ "parameters": [query("lang", json!({ "type": "string", "enum": ["en", "ja"] }), "only this language (default: both)")],
                "responses": { "200": ok_json("prompts", items(prompt())) } }), &["400", "422"]) }),
    );
    add(
        "/prompts/{lang}/{id}",
        json!({
            "parameters": [lang, id],
            "get": op("One prompt in one language", json!({ "responses": { "200": ok_json("prompt", prompt()) } }), &["404"]),
            "put": op("Replace the prompt with an uploaded file, converted to 16 kHz mono WAV; refused with the reason (422, field `file`) when unreadable, too long or silent",
                json!({ "requestBody": upload_body(false), "responses": { "200": ok_json("replaced", prompt()) } }), &["400", "404", "413", "422", "503"]),
            "delete": op("Remove the replacement: the default plays again (404 when there is none)", json!({ "responses": { "200": ok_json("reset", prompt()) } }), &["404"])
        }),
    );
    add(
        "/prompts/{lang}/{id}/audio",
        json!({ "parameters": [lang, id], "get": op("The audio that plays for the prompt (play or download)",
            json!({ "parameters": [download()], "responses": { "200": wav() } }), &["400", "404"]) }),
    );
    add(
        "/moh",
        json!({ "get": op("Music-on-hold classes: the tenant's own and the installed ones it does not replace, with their files in play order",
            json!({ "responses": { "200": ok_json("classes", items(moh_class())) } }), &[]) }),
    );
    add(
        "/moh/{class}",
        json!({
            "parameters": [class],
            "post": op("Add an uploaded file to the class (created when new), converted to 16 kHz mono WAV",
                json!({ "requestBody": upload_body(true), "responses": { "201": ok_json("added", moh_file()) } }), &["400", "409", "413", "422", "503"]),
            "delete": op("Delete the tenant's class and its files", json!({ "responses": { "200": ok_json("removed", json!({ "type": "object", "properties": { "removed": { "type": "integer" } } })) } }), &["404", "422"])
        }),
    );
    add(
        "/moh/{class}/{file}",
        json!({ "parameters": [class, file], "delete": op("Delete one file of the tenant's class",
            json!({ "responses": { "200": ok_json("removed", json!({ "type": "object", "properties": { "removed": { "type": "integer" } } })) } }), &["404", "422"]) }),
    );
    add(
        "/moh/{class}/{file}/audio",
        json!({ "parameters": [class, file], "get": op("One music-on-hold file (play or download)",
            json!({ "parameters": [download()], "responses": { "200": wav() } }), &["400", "404"]) }),
    );
}
