//! The web pages in a real headless Chromium (Debian's `chromium` and `chromedriver`,
//! installed by `scripts/install-chromium.sh` the first time), driven over WebDriver
//! against a real server: the gallery, an app's form for every kind of input, a run
//! streamed into the page, problems shown at their fields, a private app behind its
//! token, the shareable execution page across a reload, and the operator's chart and
//! cancel button. `FLOOM_SCREENSHOTS=1` also writes the README's screenshots into
//! `docs/screenshots/`.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use support::{Server, TOKEN};

/// How long a page gets to show what a test waits for.
const PATIENCE: Duration = Duration::from_secs(30);

// ---- The browser ------------------------------------------------------------------------

/// Installs Chromium and chromedriver once (under a lock: test binaries run at once).
fn chromium() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let found = |name: &str| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|path| path.is_file())
            })
        };
        if found("chromium").is_none() || found("chromedriver").is_none() {
            let lock = std::fs::File::create(std::env::temp_dir().join("floom-chromium.lock"))
                .expect("lock file");
            rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("lock");
            let script = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../scripts/install-chromium.sh"
            );
            let status = Command::new("sh")
                .arg(script)
                .status()
                .expect("run the install script");
            assert!(
                status.success(),
                "installing Chromium failed: run scripts/install-chromium.sh as root"
            );
        }
        found("chromium").expect("chromium on PATH after the install")
    })
}

/// A chromedriver (in a process group of its own, with the Chromium it starts) and a
/// WebDriver session on a fresh profile.
struct Browser {
    client: Client,
    reaper: Reaper,
}

impl Browser {
    async fn start(width: u32, height: u32) -> Browser {
        use std::os::unix::process::CommandExt as _;
        let binary = chromium();
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
        let profile = support::temp_dir("chromium-profile");
        // From here on, a failure still ends the driver and its browser.
        let reaper = Reaper(driver, profile.clone());
        let port = loop {
            let line = lines
                .next()
                .expect("chromedriver exited before listening")
                .unwrap();
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest.trim_end_matches('.').trim().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": binary,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session");
        client.set_window_size(width, height).await.unwrap();
        Browser { client, reaper }
    }

    /// Ends the session (Chromium quits), then the driver.
    async fn close(self) {
        let Browser { client, reaper } = self;
        let _ = client.close().await;
        drop(reaper);
    }

    async fn goto(&self, server: &Server, path: &str) {
        self.client.goto(&server.url(path)).await.unwrap();
    }

    /// Waits for `css` to match an element and does `act` with it. The page renders its
    /// `<main>` again (after a token is entered, a run ends, a decision), so an element
    /// found just before that is stale: it is found again.
    async fn with<T, F, Fut>(&self, css: &str, act: F) -> T
    where
        F: Fn(fantoccini::elements::Element) -> Fut,
        Fut: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
    {
        let started = Instant::now();
        loop {
            let element = self
                .client
                .wait()
                .at_most(PATIENCE)
                .for_element(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("no {css}: {e}"));
            match act(element).await {
                Ok(value) => return value,
                Err(e) if e.is_stale_element_reference() && started.elapsed() < PATIENCE => {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Err(e) => panic!("{css}: {e}"),
            }
        }
    }

    /// Waits for `css` to match an element, and returns its text.
    async fn text(&self, css: &str) -> String {
        self.with(css, |element| async move { element.text().await })
            .await
    }

    async fn click(&self, css: &str) {
        self.with(css, |element| async move { element.click().await })
            .await;
    }

    async fn fill(&self, css: &str, text: &str) {
        self.with(css, |element| async move {
            element.clear().await?;
            element.send_keys(text).await
        })
        .await;
    }

    /// `tag:type` of the element `css` matches (`input:number`, `textarea:`).
    async fn element_kind(&self, css: String) -> String {
        let element = self.client.find(Locator::Css(&css)).await.unwrap();
        let tag = element.tag_name().await.unwrap();
        let kind = element.attr("type").await.unwrap().unwrap_or_default();
        format!("{tag}:{kind}")
    }

    async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.unwrap().len()
    }

    /// Runs `script` (which `return`s) until its value is truthy; returns it.
    async fn until(&self, script: &str, what: &str) -> Value {
        let started = Instant::now();
        loop {
            let value = self.client.execute(script, vec![]).await.unwrap();
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "waited {PATIENCE:?} for {what}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until the page's heading reads `want`: after a token is entered, `<main>` is
    /// drawn again once the app's data arrives, and the old heading is there until then.
    async fn heading(&self, want: &str) {
        let script = format!(
            "const h = document.querySelector('main h1'); return !!h && h.textContent.trim() === {};",
            Value::from(want)
        );
        self.until(&script, &format!("the heading {want:?}")).await;
    }

    /// Types `token` into the header's token form.
    async fn use_token(&self, token: &str) {
        self.click("#token-panel summary").await;
        self.fill("#token-input", token).await;
        self.click("#token-panel button[type=submit]").await;
    }

    /// A screenshot of the whole page at `width`, as PNG bytes.
    async fn full_page(&self, width: u32) -> Vec<u8> {
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight", vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(900) as u32;
        self.client
            .set_window_size(width, height.clamp(600, 6000))
            .await
            .unwrap();
        self.client
            .execute("window.scrollTo(0, 0)", vec![])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.client.screenshot().await.unwrap()
    }
}

/// Kills the driver's process group (it and its Chromium) when a test ends, also by a
/// panic, and removes the profile.
struct Reaper(Child, PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(group) = rustix::process::Pid::from_raw(self.0.id() as i32) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

// ---- The apps -----------------------------------------------------------------------------

/// JSON as a TOML inline value (the manifests' schemas are written as JSON here).
fn toml(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{} = {}", Value::String(k.clone()), toml(v)))
                .collect();
            format!("{{ {} }}", entries.join(", "))
        }
        Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(toml).collect::<Vec<_>>().join(", ")
            )
        }
        other => other.to_string(),
    }
}

/// An input schema with every kind of input the form draws.
fn kit_schema() -> Value {
    json!({
        "type": "object",
        "required": ["title", "count"],
        "properties": {
            "title": {"type": "string", "maxLength": 80, "title": "Title", "description": "A short title"},
            "notes": {"type": "string", "description": "As long as you like"},
            "count": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
            "ratio": {"type": "number", "minimum": 0, "maximum": 1, "examples": [0.5]},
            "loud": {"type": "boolean", "default": true},
            "mode": {"enum": ["fast", "slow"], "default": "slow"},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3, "default": ["one"]},
            "owner": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "maxLength": 50},
                "email": {"type": "string", "maxLength": 100}
            }},
            "username": {"type": "string", "maxLength": 30, "not": {"const": "admin"}}
        }
    })
}

/// The misbehaving guest as `kit` (public: `ok` with [`kit_schema`], `emit`, `app-error`,
/// `sleep`) and as `vault` (private, one `run`... of the `ok` kind: it echoes its input).
async fn publish_apps(server: &Server) {
    let emit = json!({"type": "object", "properties": {
        "count": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
        "ms": {"type": "integer", "minimum": 0, "maximum": 2000, "default": 400}
    }});
    let sleep =
        json!({"type": "object", "properties": {"ms": {"type": "integer", "default": 30000}}});
    let kit = format!(
        "slug = \"kit\"\nname = \"Kit\"\ndescription = \"Every kind of input\"\npublic = true\n\
         [actions.ok]\ndescription = \"Echo the inputs\"\ninput_schema = {}\n\
         [actions.emit]\nstreaming = true\ninput_schema = {}\n\
         [actions.app-error]\n\
         [actions.sleep]\ninput_schema = {}\n",
        toml(&kit_schema()),
        toml(&emit),
        toml(&sleep),
    );
    let response = server.publish(&kit, floom_tests::guests::MISBEHAVE).await;
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
    // A private app whose only action is the echo (`ok`), with a schema of its own.
    let vault = format!(
        "slug = \"vault\"\nname = \"Vault\"\ndescription = \"Private\"\n\
         [actions.ok]\ninput_schema = {}\n",
        toml(
            &json!({"type": "object", "required": ["word"], "properties": {"word": {"type": "string", "maxLength": 20}}})
        ),
    );
    let response = server.publish(&vault, floom_tests::guests::MISBEHAVE).await;
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
}

async fn server() -> Server {
    let server = Server::start(&["--examples=rust"]);
    publish_apps(&server).await;
    server
}

/// The selector of `name`'s field in `action`'s form.
fn field(action: &str, name: &str) -> String {
    format!("section[data-action=\"{action}\"] .field[data-name=\"{name}\"]")
}

async fn executions(server: &Server, app: &str) -> Vec<Value> {
    let page: Value = server
        .admin_get(&format!("/api/executions?app={app}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["data"].as_array().unwrap().clone()
}

// ---- Without a browser: what every page is served with -----------------------------------

#[tokio::test]
async fn pages_are_served_with_a_strict_policy_and_escape_what_apps_say() {
    let server = Server::start(&[]);
    // An app whose name, description and schema try to inject markup.
    let hostile = "slug = \"hostile\"\npublic = true\n\
        name = \"<script>alert(1)</script>\"\n\
        description = \"<img src=x onerror=alert(2)>\"\n\
        [actions.ok]\ninput_schema = { type = \"object\", properties = { \"<b>x</b>\" = { type = \"string\", description = \"</textarea><script>alert(3)</script>\" } } }\n";
    let response = server
        .publish(hostile, floom_tests::guests::MISBEHAVE)
        .await;
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
    for path in [
        "/",
        "/apps/hostile",
        "/ops",
        "/apps/nope",
        "/executions/exec_nope",
    ] {
        let response = server.get(path).send().await.unwrap();
        let headers = response.headers().clone();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["cache-control"], "no-store");
        assert!(!headers.contains_key("set-cookie"), "{path} sets a cookie");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        let body = response.text().await.unwrap();
        assert!(!body.contains("<script>alert"), "{path}: {body}");
        assert!(!body.contains("<img src=x"), "{path}: {body}");
        assert!(!body.contains("<b>x</b>"), "{path}: {body}");
    }
    let gallery = server.get("/").send().await.unwrap().text().await.unwrap();
    assert!(
        gallery.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{gallery}"
    );
    // Inline script is never used: every script is the one file.
    assert_eq!(gallery.matches("<script").count(), 1);
    assert!(gallery.contains("<script src=\"/assets/floom.js\" defer></script>"));
    let js = server.get("/assets/floom.js").send().await.unwrap();
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(js.headers()["x-content-type-options"], "nosniff");
    let tag = js.headers()["etag"].clone();
    let again = server
        .get("/assets/floom.js")
        .header("if-none-match", tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    // Without credentials a private app's page says a token is needed, and what it is
    // not: its name stays private.
    let private = server
        .publish(
            "slug = \"quiet\"\nname = \"Quiet secret name\"\n[actions.ok]\n",
            floom_tests::guests::MISBEHAVE,
        )
        .await;
    assert!(private.status().is_success());
    let page = server.get("/apps/quiet").send().await.unwrap();
    assert_eq!(page.status(), 401);
    assert!(!page.text().await.unwrap().contains("Quiet secret name"));
    let gallery = server.get("/").send().await.unwrap().text().await.unwrap();
    assert!(!gallery.contains("quiet"));
    let gallery = server
        .get("/")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(gallery.contains("Quiet secret name"));
}

// ---- In the browser ---------------------------------------------------------------------------

#[tokio::test]
async fn the_gallery_lists_the_apps_a_visitor_may_see_and_searches_them() {
    let server = server().await;
    let browser = Browser::start(1280, 900).await;
    browser.goto(&server, "/").await;
    let titles = browser.text("#app-list").await;
    assert!(
        titles.contains("Hello") && titles.contains("Kit"),
        "{titles}"
    );
    assert!(
        !titles.contains("Vault"),
        "a private app is not listed without a token"
    );
    assert!(
        browser
            .text(".card [href='/apps/hello']")
            .await
            .contains("Hello")
    );

    // The search box filters as you type.
    browser.fill("#search", "greets").await;
    browser
        .until(
            "return document.querySelectorAll('.card:not([hidden])').length === 1",
            "the search to leave one card",
        )
        .await;
    assert!(
        browser
            .text(".card:not([hidden]) h2")
            .await
            .contains("Hello")
    );
    assert!(
        browser
            .text("[data-search-count]")
            .await
            .starts_with("1 of ")
    );

    // With the admin token, the private app is there too.
    browser.use_token(TOKEN).await;
    browser
        .until(
            "return !!document.querySelector(\".card [href='/apps/vault']\")",
            "the private app with the token",
        )
        .await;
    assert_eq!(browser.text("[data-token-state]").await, "Token in use");
    browser.close().await;
}

#[tokio::test]
async fn an_app_page_draws_an_input_for_each_kind_of_schema() {
    let server = server().await;
    let browser = Browser::start(1280, 900).await;
    browser.goto(&server, "/apps/kit").await;
    let control = |name: &str| format!("{} > .control", field("ok", name));
    let tag = |name: &str| browser.element_kind(control(name));
    assert_eq!(tag("title").await, "input:text", "maxLength 80: one line");
    assert_eq!(tag("notes").await, "textarea:", "no maxLength: a textarea");
    assert_eq!(tag("count").await, "input:number");
    assert_eq!(tag("ratio").await, "input:number");
    assert_eq!(tag("loud").await, "input:checkbox");
    assert_eq!(tag("mode").await, "select:");
    assert_eq!(tag("username").await, "input:text");

    // Labels, help, required marks, bounds and defaults.
    let label = browser
        .text(&format!("{} > label", field("ok", "title")))
        .await;
    assert!(
        label.starts_with("Title") && label.contains("(required)"),
        "{label}"
    );
    assert!(
        browser
            .text(&format!("{} > .help", field("ok", "title")))
            .await
            .contains("A short title")
    );
    let count = browser
        .client
        .find(Locator::Css(&control("count")))
        .await
        .unwrap();
    assert_eq!(count.attr("min").await.unwrap().as_deref(), Some("1"));
    assert_eq!(count.attr("max").await.unwrap().as_deref(), Some("10"));
    assert_eq!(
        count.prop("value").await.unwrap().as_deref(),
        Some("3"),
        "the default"
    );
    let ratio = browser
        .client
        .find(Locator::Css(&control("ratio")))
        .await
        .unwrap();
    assert_eq!(
        ratio.prop("value").await.unwrap().as_deref(),
        Some("0.5"),
        "the example"
    );
    let loud = browser
        .client
        .find(Locator::Css(&control("loud")))
        .await
        .unwrap();
    assert_eq!(loud.prop("checked").await.unwrap().as_deref(), Some("true"));
    let options = browser
        .client
        .execute(
            &format!(
                "return Array.from(document.querySelector('{}').options).map(o => [o.textContent, o.selected])",
                control("mode").replace('\'', "\\'")
            ),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        options,
        json!([["(none)", false], ["fast", false], ["slow", true]])
    );

    // The nested object is a group of its own fields.
    let owner = field("ok", "owner");
    assert_eq!(browser.text(&format!("{owner} > legend")).await, "Owner");
    assert_eq!(
        browser
            .count(&format!("{owner} .field[data-name=\"name\"] > input"))
            .await,
        1
    );
    assert!(
        browser
            .text(&format!("{owner} .field[data-name=\"name\"] > label"))
            .await
            .contains("(required)")
    );

    // The list starts with its default item; items are added and removed, up to maxItems.
    let tags = field("ok", "tags");
    let items = format!("{tags} > .items > .item");
    assert_eq!(browser.count(&items).await, 1);
    let first = browser
        .client
        .find(Locator::Css(&format!("{items} .control")))
        .await
        .unwrap();
    assert_eq!(first.prop("value").await.unwrap().as_deref(), Some("one"));
    browser.click(&format!("{tags} > [data-add]")).await;
    browser.click(&format!("{tags} > [data-add]")).await;
    assert_eq!(browser.count(&items).await, 3);
    let add = browser
        .client
        .find(Locator::Css(&format!("{tags} > [data-add]")))
        .await
        .unwrap();
    assert_eq!(
        add.prop("disabled").await.unwrap().as_deref(),
        Some("true"),
        "at maxItems"
    );
    let ids = browser
        .client
        .execute(
            &format!(
                "return Array.from(document.querySelectorAll('{} .control')).map(c => c.id)",
                items.replace('\'', "\\'")
            ),
            vec![],
        )
        .await
        .unwrap();
    let ids: Vec<&str> = ids
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        ids.iter().collect::<std::collections::HashSet<_>>().len(),
        3,
        "unique ids: {ids:?}"
    );
    assert!(ids.iter().all(|id| !id.contains("__item__")), "{ids:?}");
    browser
        .click(&format!("{items}:nth-child(2) > [data-remove]"))
        .await;
    assert_eq!(browser.count(&items).await, 2);
    let labels = browser.text(&format!("{tags} > .items")).await;
    assert!(
        labels.contains("Tags item 1") && labels.contains("Tags item 2"),
        "{labels}"
    );

    // The snippets run the same inputs: the CLI's carries the form's values.
    browser.fill(&control("title"), "Snippet").await;
    browser
        .click("section[data-action=\"ok\"] .snippets summary")
        .await;
    let cli = browser
        .text("section[data-action=\"ok\"] [data-snippet=\"cli\"]")
        .await;
    assert!(
        cli.contains("floom run kit/ok") && cli.contains("\"title\":\"Snippet\""),
        "{cli}"
    );
    let curl = browser
        .text("section[data-action=\"ok\"] [data-snippet=\"curl\"]")
        .await;
    assert!(
        curl.contains("/api/apps/kit/actions/ok/run?wait=true"),
        "{curl}"
    );
    let mcp = browser
        .text("section[data-action=\"ok\"] [data-snippet=\"mcp\"]")
        .await;
    assert!(
        mcp.contains("\"name\":\"kit__ok\"") && mcp.contains("tools/call"),
        "{mcp}"
    );
    browser.close().await;
}

#[tokio::test]
async fn a_run_streams_its_chunks_before_its_output_and_its_page_survives_a_reload() {
    let server = server().await;
    let browser = Browser::start(1280, 900).await;
    browser.goto(&server, "/apps/kit").await;
    browser
        .click("section[data-action=\"emit\"] [data-run]")
        .await;
    let section = "document.querySelector('section[data-action=\"emit\"]')";
    // The first chunk is shown while the output is not there yet.
    let seen = browser
        .until(
            &format!(
                "const s = {section}; const n = s.querySelectorAll('[data-chunks] li').length; \
                 return n > 0 ? [n, s.querySelector('[data-output]').children.length] : null"
            ),
            "the first chunk",
        )
        .await;
    assert_eq!(seen[1], 0, "a chunk is shown before the output: {seen}");
    browser
        .until(
            &format!("return {section}.querySelector('[data-output] dl') !== null"),
            "the output",
        )
        .await;
    assert_eq!(
        browser
            .count("section[data-action=\"emit\"] [data-chunks] li")
            .await,
        3
    );
    let chunks = browser
        .text("section[data-action=\"emit\"] [data-chunks]")
        .await;
    assert!(
        chunks.contains("{\"i\":0}") && chunks.contains("{\"i\":2}"),
        "{chunks}"
    );
    let output = browser
        .text("section[data-action=\"emit\"] [data-output]")
        .await;
    assert!(
        output.contains("emitted") && output.contains('3'),
        "{output}"
    );
    assert!(
        browser
            .text("section[data-action=\"emit\"] [data-status]")
            .await
            .starts_with("Succeeded")
    );

    // The run is recorded as started from a page.
    let runs = executions(&server, "kit").await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["trigger_source"], "ui");
    assert_eq!(runs[0]["status"], "succeeded");

    // Its shareable page shows the result, also after a reload.
    let link = browser
        .client
        .find(Locator::Css(
            "section[data-action=\"emit\"] [data-share-link]",
        ))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(link.contains("view_token="), "{link}");
    browser.client.goto(&link).await.unwrap();
    for _ in 0..2 {
        browser
            .until(
                "return document.querySelector('[data-output] dl') !== null",
                "the output on the execution page",
            )
            .await;
        assert!(browser.text("[data-output]").await.contains("emitted"));
        assert_eq!(browser.count("[data-chunks] li").await, 3);
        assert_eq!(browser.text("[data-status-badge]").await, "succeeded");
        browser.client.refresh().await.unwrap();
    }
    assert!(
        browser.text("dl.facts").await.contains("ui"),
        "started from a page"
    );
    // Without the view token, the page is refused.
    let id = runs[0]["execution_id"].as_str().unwrap();
    browser.goto(&server, &format!("/executions/{id}")).await;
    assert_eq!(browser.text("main h1").await, "A token is needed");
    browser.close().await;
}

#[tokio::test]
async fn problems_are_shown_at_their_fields_and_failures_say_why() {
    let server = server().await;
    let browser = Browser::start(1280, 900).await;
    browser.goto(&server, "/apps/kit").await;
    let error = |name: &str| format!("{} > .error", field("ok", name));

    // An empty required field is flagged before anything is sent.
    browser
        .click("section[data-action=\"ok\"] [data-run]")
        .await;
    browser
        .until(
            &format!(
                "const e = document.querySelector('{}'); return e && !e.hidden",
                error("title").replace('\'', "\\'")
            ),
            "the required mark",
        )
        .await;
    assert_eq!(browser.text(&error("title")).await, "This is required.");
    let title = browser
        .client
        .find(Locator::Css(&format!(
            "{} > .control",
            field("ok", "title")
        )))
        .await
        .unwrap();
    assert_eq!(
        title.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
    assert!(
        browser
            .text("section[data-action=\"ok\"] .form-error")
            .await
            .contains("Nothing was sent")
    );
    // A limit of the schema, too: a tag longer than its maxLength.
    browser
        .fill(
            &format!("{} .item .control", field("ok", "tags")),
            &"x".repeat(21),
        )
        .await;
    browser
        .click("section[data-action=\"ok\"] [data-run]")
        .await;
    assert!(
        browser
            .text(&format!("{} .item .error", field("ok", "tags")))
            .await
            .contains("At most 20")
    );
    assert!(
        executions(&server, "kit").await.is_empty(),
        "nothing was sent"
    );

    // What only the server checks (`not`) comes back and is shown at its field.
    browser
        .fill(&format!("{} .item .control", field("ok", "tags")), "fine")
        .await;
    browser
        .fill(&format!("{} > .control", field("ok", "title")), "A title")
        .await;
    browser
        .fill(&format!("{} > .control", field("ok", "username")), "admin")
        .await;
    browser
        .click("section[data-action=\"ok\"] [data-run]")
        .await;
    browser
        .until(
            &format!(
                "const e = document.querySelector('{}'); return e && !e.hidden",
                error("username").replace('\'', "\\'")
            ),
            "the server's error at its field",
        )
        .await;
    assert!(browser.text(&error("username")).await.len() > 3);
    assert!(
        browser
            .text("section[data-action=\"ok\"] .form-error")
            .await
            .contains("server refused")
    );
    assert!(
        executions(&server, "kit").await.is_empty(),
        "the server created nothing"
    );

    // Fixed, the run goes through and echoes the inputs, typed as the schema says.
    browser
        .fill(&format!("{} > .control", field("ok", "username")), "ada")
        .await;
    browser
        .click("section[data-action=\"ok\"] [data-run]")
        .await;
    browser
        .until(
            "return document.querySelector('section[data-action=\"ok\"] [data-output] dl') !== null",
            "the echo",
        )
        .await;
    let runs = executions(&server, "kit").await;
    let detail: Value = server
        .admin_get(&format!(
            "/api/executions/{}",
            runs[0]["execution_id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        detail["inputs"],
        json!({"title": "A title", "count": 3, "ratio": 0.5, "loud": true, "mode": "slow", "tags": ["fine"], "username": "ada"}),
        "the optional group left empty is left out"
    );

    // An app's own error is shown with its code and message.
    browser
        .click("section[data-action=\"app-error\"] [data-run]")
        .await;
    let failure = browser
        .text("section[data-action=\"app-error\"] .failure")
        .await;
    assert!(
        failure.contains("app_error") && failure.contains("it went wrong on purpose"),
        "{failure}"
    );
    assert!(failure.contains("bad_thing"), "{failure}");
    assert_eq!(
        browser
            .text("section[data-action=\"app-error\"] [data-status]")
            .await,
        "Failed"
    );
    browser.close().await;
}

#[tokio::test]
async fn a_private_app_needs_its_token() {
    let server = server().await;
    let browser = Browser::start(1280, 900).await;
    browser.goto(&server, "/apps/vault").await;
    assert_eq!(browser.text("main h1").await, "A token is needed");
    assert_eq!(browser.count("[data-run-form]").await, 0);
    // A wrong token is refused, and says so.
    browser.fill("#token-inline", "not-the-token").await;
    browser
        .click("main [data-token-form] button[type=submit]")
        .await;
    browser
        .until(
            "return document.querySelector('main').textContent.includes('not valid')",
            "the refusal",
        )
        .await;
    // The right one opens the app, and the run sends it.
    browser.fill("#token-inline", TOKEN).await;
    browser
        .click("main [data-token-form] button[type=submit]")
        .await;
    browser.heading("Vault").await;
    browser
        .fill(&format!("{} > .control", field("ok", "word")), "hush")
        .await;
    browser
        .click("section[data-action=\"ok\"] [data-run]")
        .await;
    browser
        .until(
            "return (document.querySelector('section [data-status]') || {}).textContent?.startsWith('Succeeded')",
            "the private run",
        )
        .await;
    let runs = executions(&server, "vault").await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["trigger_source"], "ui");
    // The token stays in the tab: another page of the site still has it.
    browser.goto(&server, "/").await;
    browser
        .until(
            "return !!document.querySelector(\".card [href='/apps/vault']\")",
            "the private app listed",
        )
        .await;
    let cookies = browser
        .client
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert_eq!(cookies, "", "no cookies");
    browser.close().await;
}

#[tokio::test]
async fn the_operators_view_charts_the_runs_and_cancels_one() {
    let server = server().await;
    for _ in 0..3 {
        server
            .run_sync("/api/apps/kit/actions/emit/run", json!({"ms": 0}))
            .await;
    }
    server
        .run_sync("/api/apps/kit/actions/app-error/run", json!({}))
        .await;
    let slow = server
        .start_run("/api/apps/kit/actions/sleep/run", json!({"ms": 60000}))
        .await;
    let slow = slow["execution_id"].as_str().unwrap().to_owned();

    let browser = Browser::start(1280, 900).await;
    browser.goto(&server, "/ops/apps/kit").await;
    assert_eq!(browser.text("main h1").await, "A token is needed");
    browser.fill("#token-inline", TOKEN).await;
    browser
        .click("main [data-token-form] button[type=submit]")
        .await;
    browser.heading("Kit").await;
    // Today's bar has its succeeded and failed parts, and the durations their lines.
    assert!(browser.count("svg.chart rect.s-succeeded").await >= 1);
    assert!(browser.count("svg.chart rect.s-failed").await >= 1);
    assert!(
        browser.count("svg.chart polyline.line-p50").await
            + browser.count("svg.chart circle.line-p50").await
            >= 1
    );
    let desc = browser
        .client
        .execute(
            "return document.getElementById('runs-chart-desc').textContent",
            vec![],
        )
        .await
        .unwrap();
    assert!(desc.as_str().unwrap().contains("3 succeeded"), "{desc}");
    assert_eq!(browser.count("table[data-runs] tbody tr").await, 5);

    // Filters: only the failed run.
    let status = browser
        .client
        .find(Locator::Css("#f-status"))
        .await
        .unwrap();
    status.select_by_value("failed").await.unwrap();
    browser
        .click("form[data-swap-form] button[type=submit]")
        .await;
    browser
        .until(
            "return document.querySelectorAll('table[data-runs] tbody tr').length === 1",
            "the filter",
        )
        .await;
    assert!(browser.text("table[data-runs]").await.contains("app_error"));
    assert!(
        browser
            .client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .contains("status=failed")
    );

    // Cancel the slow run from its row.
    let status = browser
        .client
        .find(Locator::Css("#f-status"))
        .await
        .unwrap();
    status.select_by_value("").await.unwrap();
    browser
        .click("form[data-swap-form] button[type=submit]")
        .await;
    browser
        .click(&format!("button[data-cancel=\"{slow}\"]"))
        .await;
    browser
        .until(
            &format!("return document.querySelector('button[data-cancel=\"{slow}\"]') === null && document.querySelectorAll('table[data-runs] tbody tr').length === 5"),
            "the cancelled run's row without its button",
        )
        .await;
    let run = server.wait_terminal(&slow, Duration::from_secs(10)).await;
    assert_eq!(run["status"], "cancelled");
    // The overview lists the app with its figures.
    browser.goto(&server, "/ops").await;
    assert!(browser.text("table.runs").await.contains("Kit"));

    // A run's own page follows it live, and can cancel it too.
    let slow = server
        .start_run("/api/apps/kit/actions/sleep/run", json!({"ms": 60000}))
        .await;
    let (id, view_token) = (
        slow["execution_id"].as_str().unwrap(),
        slow["view_token"].as_str().unwrap(),
    );
    browser
        .goto(
            &server,
            &format!("/executions/{id}?view_token={view_token}"),
        )
        .await;
    browser
        .until(
            "return document.querySelector('[data-status-badge]').textContent === 'running'",
            "the run's start, live",
        )
        .await;
    browser
        .click(&format!("button[data-cancel=\"{id}\"]"))
        .await;
    browser
        .until(
            "return document.querySelector('[data-status-badge]').textContent === 'cancelled' \
             && document.querySelector('dl.facts').textContent.includes('Duration') \
             && !document.querySelector('button[data-cancel]')",
            "the cancelled run's final page",
        )
        .await;
    assert!(
        browser
            .text("[data-output] .failure")
            .await
            .contains("cancelled")
    );
    browser.close().await;
}

/// The README's screenshots: written into `docs/screenshots/` with `FLOOM_SCREENSHOTS=1`
/// (`scripts/screenshots.sh`), else only taken.
#[tokio::test]
async fn screenshots_of_the_gallery_an_app_after_a_run_and_the_operators_view() {
    // The examples only, as a new user sees them.
    let server = Server::start(&["--examples=rust"]);
    for _ in 0..4 {
        server
            .run_sync(
                "/api/apps/meeting-action-items/run",
                json!({"transcript": "Alice: I will ship it by Friday."}),
            )
            .await;
    }
    server
        .run_sync("/api/apps/word-count/run", json!({"text": "one two two"}))
        .await;
    let save = std::env::var_os("FLOOM_SCREENSHOTS").is_some();
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/screenshots"));
    for (width, suffix) in [(1280, "desktop"), (375, "phone")] {
        let browser = Browser::start(width, 900).await;
        let mut shots = Vec::new();
        browser.goto(&server, "/").await;
        browser.text("#app-list").await;
        shots.push(("gallery", browser.full_page(width).await));

        browser.client.set_window_size(width, 900).await.unwrap();
        browser.goto(&server, "/apps/meeting-action-items").await;
        browser
            .fill(
                &format!("{} > .control", field("run", "transcript")),
                "Alice: Let us ship by Friday. Bob: I will write the notes by Monday. Carol: I will book the room.",
            )
            .await;
        browser
            .click("section[data-action=\"run\"] [data-run]")
            .await;
        browser
            .until(
                "return document.querySelector('[data-output] table') !== null",
                "the items table",
            )
            .await;
        shots.push(("app-after-run", browser.full_page(width).await));

        browser.client.set_window_size(width, 900).await.unwrap();
        browser
            .goto(&server, "/ops/apps/meeting-action-items")
            .await;
        browser.use_token(TOKEN).await;
        browser
            .until(
                "return document.querySelector('svg.chart rect') !== null",
                "the chart",
            )
            .await;
        shots.push(("operator", browser.full_page(width).await));
        browser.close().await;
        for (name, png) in shots {
            assert!(
                png.starts_with(b"\x89PNG") && png.len() > 10_000,
                "{name} {suffix}"
            );
            if save {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join(format!("{name}-{suffix}.png")), png).unwrap();
            }
        }
    }
}

/// An example's slug, an action and the inputs typed into its form.
type Example<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// What a new user does: open each bundled example's page, fill in its required inputs
/// and run it. Every run must end on the page (the ones that need the internet or a
/// secret end in an error that the page shows).
#[tokio::test]
async fn every_example_runs_from_its_page() {
    let server = Server::start(&["--examples=rust"]);
    let browser = Browser::start(1280, 900).await;
    browser.goto(&server, "/").await;
    browser.use_token(TOKEN).await;
    let fill: &[Example<'_>] = &[
        ("hello", "run", &[("name", "Ada")]),
        (
            "meeting-action-items",
            "run",
            &[("transcript", "Alice: I will ship it by Friday.")],
        ),
        ("word-count", "run", &[("text", "one two two")]),
        // No network here: these end in the error their pages show.
        (
            "github-repo",
            "run",
            &[
                ("repo", "rust-lang/rust"),
                ("api_base", "http://127.0.0.1:9"),
            ],
        ),
        ("page-summary", "run", &[("url", "http://127.0.0.1:9/")]),
        // Its secret is not set: the app says so.
        ("webhook-signer", "sign", &[("body", "{}")]),
        (
            "webhook-signer",
            "verify",
            &[("body", "{}"), ("signature", "t=1,v1=00")],
        ),
        // The draft waits for a person; the send has no outbox to reach here.
        (
            "reply-drafter",
            "draft",
            &[("from", "ada@example.org"), ("message", "Where is it?")],
        ),
        (
            "reply-drafter",
            "send",
            &[
                ("to", "ada@example.org"),
                ("subject", "Re"),
                ("body", "Soon"),
                ("api_base", "http://127.0.0.1:9"),
            ],
        ),
    ];
    for (slug, action, inputs) in fill {
        browser.goto(&server, &format!("/apps/{slug}")).await;
        for (name, value) in *inputs {
            browser
                .fill(&format!("{} > .control", field(action, name)), value)
                .await;
        }
        browser
            .click(&format!("section[data-action=\"{action}\"] [data-run]"))
            .await;
        let status = browser
            .until(
                &format!(
                    "const s = document.querySelector('section[data-action=\"{action}\"] [data-status]'); \
                     return s && /^(Succeeded|Failed|Timed out|Cancelled|Awaiting approval)/.test(s.textContent) ? s.textContent : null"
                ),
                &format!("{slug} {action} to end"),
            )
            .await;
        let shown = browser
            .text(&format!("section[data-action=\"{action}\"] [data-output]"))
            .await;
        assert!(
            !shown.is_empty(),
            "{slug} {action}: {status} with nothing shown"
        );
        if *action == "draft" {
            assert!(
                status.as_str().unwrap().starts_with("Awaiting approval")
                    && shown.contains("Proposed output"),
                "{slug}: {status} {shown}"
            );
        }
        if ["hello", "meeting-action-items", "word-count"].contains(slug) {
            assert!(
                status.as_str().unwrap().starts_with("Succeeded"),
                "{slug}: {status} {shown}"
            );
        }
    }

    // A file input: an empty required one is flagged before sending, then the chosen
    // file goes up as a part of a multipart request and the report comes back linked.
    browser.goto(&server, "/apps/csv-report").await;
    let csv = field("run", "csv");
    assert_eq!(
        browser.element_kind(format!("{csv} > .control")).await,
        "input:file"
    );
    browser
        .click("section[data-action=\"run\"] [data-run]")
        .await;
    let flagged = browser.text(&format!("{csv} > .error:not([hidden])")).await;
    assert_eq!(flagged, "This is required.");
    assert!(executions(&server, "csv-report").await.is_empty());
    let dir = support::temp_dir("page-upload");
    let scores = dir.join("scores.csv");
    std::fs::write(&scores, "name,score\n\"Lovelace, Ada\",91\nTuring,88\n").unwrap();
    browser
        .with(&format!("{csv} > .control"), |element| {
            let path = scores.display().to_string();
            async move { element.send_keys(&path).await }
        })
        .await;
    browser
        .fill(&format!("{} > .control", field("run", "title")), "Scores")
        .await;
    // The snippets say how to send the same file from a shell.
    browser
        .click("section[data-action=\"run\"] .snippets summary")
        .await;
    let curl = browser
        .text("section[data-action=\"run\"] [data-snippet=\"curl\"]")
        .await;
    assert!(curl.contains("-F 'csv=@csv.file'"), "{curl}");
    browser
        .click("section[data-action=\"run\"] [data-run]")
        .await;
    let status = browser
        .until(
            "const s = document.querySelector('section[data-action=\"run\"] [data-status]'); \
             return s && /^(Succeeded|Failed|Timed out|Cancelled)/.test(s.textContent) ? s.textContent : null",
            "the csv report to end",
        )
        .await;
    let shown = browser
        .text("section[data-action=\"run\"] [data-output]")
        .await;
    assert!(
        status.as_str().unwrap().starts_with("Succeeded"),
        "{status} {shown}"
    );
    let links = browser
        .until(
            "const links = [...document.querySelectorAll('section[data-action=\"run\"] [data-output] .artifacts a')]; \
             return links.length ? links.map(a => a.textContent) : null",
            "the report's artifact links",
        )
        .await;
    let links = links.to_string();
    assert!(
        links.contains("report.md") && links.contains("chart.svg"),
        "{links}"
    );
    let runs = executions(&server, "csv-report").await;
    assert_eq!(runs.len(), 1);
    let id = runs[0]["execution_id"].as_str().unwrap();
    let execution = server.wait_terminal(id, PATIENCE).await;
    assert_eq!(execution["trigger_source"], "ui");
    assert_eq!(execution["output"]["rows"], 2);
    assert_eq!(execution["inputs"]["csv"], "/in/csv.csv");
    browser.close().await;
}

#[tokio::test]
async fn an_output_awaiting_approval_is_approved_with_an_edit_from_its_page() {
    let server = Server::start(&[]);
    let manifest = "slug = \"gated\"\npublic = true\n[actions.ok]\napproval = true\n";
    let response = server
        .publish(manifest, floom_tests::guests::MISBEHAVE)
        .await;
    assert_eq!(response.status(), 201);
    let envelope = server
        .start_run("/api/apps/gated/actions/ok/run", json!({ "n": 1 }))
        .await;
    let id = envelope["execution_id"].as_str().unwrap();
    let view_token = envelope["view_token"].as_str().unwrap();
    let started = Instant::now();
    while server.status_of(id).await != "awaiting_approval" {
        assert!(started.elapsed() < PATIENCE);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let browser = Browser::start(1280, 900).await;
    browser
        .goto(
            &server,
            &format!("/executions/{id}?view_token={view_token}"),
        )
        .await;
    assert_eq!(
        browser.text("[data-status-badge]").await,
        "awaiting_approval"
    );
    let proposed: Value = serde_json::from_str(&browser.text("[data-approval-output]").await)
        .expect("the proposed output, as JSON");
    assert_eq!(proposed, json!({ "ok": true, "input": { "n": 1 } }));
    // The view token reads the approval but may not decide it: the page says why.
    browser.click("[data-approve]").await;
    let refusal = browser.text("[data-approval-problem]:not([hidden])").await;
    assert!(refusal.contains("admin token"), "{refusal}");

    // With the admin token, an edited output is approved.
    browser.use_token(TOKEN).await;
    browser
        .fill("[data-approval-output]", "{\"ok\": \"edited on the page\"}")
        .await;
    browser
        .fill("[data-approval-note]", "checked by hand")
        .await;
    browser.click("[data-approve]").await;
    browser
        .until(
            "return document.querySelector('[data-status-badge]')?.textContent === 'succeeded'",
            "the approved run",
        )
        .await;
    // The page is rendered again after the decision (by the click, and by the stream).
    let decided = browser
        .until(
            "return document.querySelector('.approval .decided')?.textContent",
            "the decision",
        )
        .await;
    assert!(
        decided.as_str().unwrap().starts_with("approved by admin"),
        "{decided}"
    );
    let execution = server.wait_terminal(id, PATIENCE).await;
    assert_eq!(execution["output"], json!({ "ok": "edited on the page" }));
    assert_eq!(execution["approval"]["annotation"], "checked by hand");
    assert_eq!(execution["approval"]["edited"], true);
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_artifacts_are_linked_from_its_page() {
    let server = Server::start(&[]);
    let manifest = "slug = \"files\"\npublic = true\n[actions.artifacts]\n";
    let response = server
        .publish(manifest, floom_tests::guests::FILES_CMD)
        .await;
    assert_eq!(response.status(), 201);
    let browser = Browser::start(1280, 900).await;
    browser.goto(&server, "/apps/files").await;
    browser
        .click("section[data-action=\"artifacts\"] [data-run]")
        .await;
    let links = browser
        .until(
            "const links = [...document.querySelectorAll('section[data-action=\"artifacts\"] [data-output] .artifacts a')]; \
             return links.length ? links.map(a => a.getAttribute('href')) : null",
            "the artifact links",
        )
        .await;
    let links: Vec<String> = links
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(links.len(), 4, "{links:?}");
    let report = links
        .iter()
        .find(|l| l.contains("/report.txt?view_token="))
        .unwrap();
    // The link works as it is, without a token: a browser or anyone it is shared with.
    let body = server
        .get(report)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "hello report\n");
    assert!(
        links
            .iter()
            .any(|l| l.contains("/artifacts/sub/nested.json?"))
    );
    browser.close().await;
}
