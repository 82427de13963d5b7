//! Bad input: every problem names its file, line, field and what is allowed.

use serial_test::parallel;

use crate::fixture::*;

#[test]
#[parallel]
fn malformed_toml_names_file_line_and_column() {
    let f = Fixture::new();
    let campaign = f.campaign_raw("name = \"t\"\n[[days]]\nnumber = \n");
    expect_usage_error(
        &f,
        &campaign,
        &["campaign.toml:3:", "syntax", "docs/campaign-author.md"],
    );
}

#[test]
#[parallel]
fn unknown_kind_lists_the_known_ones() {
    let f = Fixture::new();
    let campaign = f.campaign(&TTFT_DAY.replace("first_token_latency", "warp_drive"));
    expect_usage_error(
        &f,
        &campaign,
        &[
            &position_of(&campaign, "kind = \"warp_drive\""),
            "unknown benchmark kind \"warp_drive\"",
            "first_token_latency, token_generation",
        ],
    );
}

#[test]
#[parallel]
fn unknown_fields_are_errors_not_ignored() {
    let f = Fixture::new();
    let campaign = f.campaign(&TTFT_DAY.replace("iterations = 4", "iteratoins = 4"));
    expect_usage_error(&f, &campaign, &["iteratoins", "iterations"]);
    let campaign = f.campaign(&TTFT_DAY.replace(
        "prompt_lengths = [8, 32]",
        "prompt_lengths = [8]\nprompt_lenghts = [32]",
    ));
    expect_usage_error(
        &f,
        &campaign,
        &[
            &position_of(&campaign, "prompt_lenghts"),
            "params.prompt_lenghts",
            "unknown field",
        ],
    );
}

#[test]
#[parallel]
fn settings_errors_point_at_their_line() {
    let f = Fixture::new();
    let campaign = f.campaign(TTFT_DAY);
    let text = fs::read_to_string(&campaign)
        .unwrap()
        .replace("threads = 1", "threads = 0");
    fs::write(&campaign, text).unwrap();
    expect_usage_error(
        &f,
        &campaign,
        &[
            &position_of(&campaign, "threads = 0"),
            "settings, field `threads`",
            "found 0; allowed: a whole number of compute threads from 1 to 1024",
        ],
    );
}

#[test]
#[parallel]
fn bad_targets_name_the_metrics_of_the_kind() {
    let f = Fixture::new();
    let campaign = f.campaign(&TTFT_DAY.replace("ttft_ms.p50 < 60000", "tpot_ms.p50 < 1"));
    expect_usage_error(
        &f,
        &campaign,
        &["no metric \"tpot_ms\"", "ttft_ms, prefill_tokens_per_s"],
    );
}

#[test]
#[parallel]
fn missing_model_path_is_a_campaign_error() {
    let f = Fixture::new();
    let campaign = f.campaign(&format!(
        "[models.real]\npath = \"no/such/model\"\n{TTFT_DAY}"
    ));
    expect_usage_error(
        &f,
        &campaign,
        &[
            &position_of(&campaign, "path = \"no/such/model\""),
            "model \"real\", field `path`",
            "no/such/model",
            "does not exist",
        ],
    );
}

#[test]
#[parallel]
fn prompt_longer_than_the_model_allows_is_a_campaign_error() {
    let f = Fixture::new();
    let campaign = f.campaign(&TTFT_DAY.replace("[8, 32]", "[8, 4096]"));
    expect_usage_error(
        &f,
        &campaign,
        &["max_position_embeddings (1024)", "params.prompt_lengths"],
    );
}

#[test]
#[parallel]
fn unwritable_output_folder_is_a_usage_error() {
    let f = Fixture::new();
    let campaign = f.campaign(TTFT_DAY);
    // A regular file where a folder should be: fails even for root.
    let blocker = f.path("blocker");
    fs::write(&blocker, b"").unwrap();
    cargo_bin_cmd!("campaign")
        .args(["run", "--day", "1", "--campaign"])
        .arg(&campaign)
        .arg("--out")
        .arg(blocker.join("results"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("blocker").and(predicate::str::contains("--out DIR")));
}

#[test]
#[parallel]
fn missing_day_and_empty_day_are_usage_errors() {
    let f = Fixture::new();
    let campaign = f.campaign(&format!(
        "{TTFT_DAY}\n[[days]]\nnumber = 2\ntitle = \"later\"\n"
    ));
    cargo_bin_cmd!("campaign")
        .args(["run", "--day", "9", "--campaign"])
        .arg(&campaign)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no day 9").and(predicate::str::contains("1, 2")));
    cargo_bin_cmd!("campaign")
        .args(["run", "--day", "2", "--campaign"])
        .arg(&campaign)
        .arg("--out")
        .arg(f.out())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("lists no benchmarks yet"));
}

#[cfg(not(feature = "cuda"))]
#[test]
#[parallel]
fn a_device_not_compiled_in_names_its_cargo_feature() {
    let f = Fixture::new();
    let campaign = f.campaign(TTFT_DAY);
    f.run(&campaign, &["--device", "cuda:0"])
        .code(2)
        .stderr(predicate::str::contains("--features cuda"));
}

#[test]
#[parallel]
fn list_and_validate_describe_the_default_campaign() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let campaign = root.join("campaigns/default.toml");
    cargo_bin_cmd!("campaign")
        .arg("validate")
        .arg(&campaign)
        .assert()
        .success()
        .stdout(predicate::str::contains("ok (5 days"));
    // Every campaign shipped validates (remedies.toml is the remedy catalog).
    let shipped: Vec<PathBuf> = fs::read_dir(root.join("campaigns"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter(|p| !p.ends_with("remedies.toml"))
        .collect();
    assert!(shipped.len() >= 6, "{shipped:?}");
    for other in shipped {
        cargo_bin_cmd!("campaign")
            .arg("validate")
            .arg(&other)
            .assert()
            .success();
    }
    cargo_bin_cmd!("campaign")
        .args(["list", "--campaign"])
        .arg(&campaign)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("Day 1: LLM inference baselines")
                .and(predicate::str::contains("[first_token_latency]"))
                .and(predicate::str::contains("target: ttft_ms.p50"))
                .and(predicate::str::contains("Day 5:")),
        );
}

#[test]
#[parallel]
fn help_documents_the_exit_codes() {
    cargo_bin_cmd!("campaign")
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("4    a benchmark failed"));
}
