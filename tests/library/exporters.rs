//! Every exporter on a fixed report (a real Day 1 of first-token latency
//! and a storage sweep, with a comparison against a baseline, stored in
//! `tests/fixtures/`): the bytes each format writes are snapshots, so a
//! change to any writer is seen in review. And the artifact writer's
//! policy: a file that cannot be written does not stop the others.

use std::fs;
use std::path::Path;

use campaign::analysis::{BottleneckAnalysis, Comparison, day_curves, plan_decision};
use campaign::model::DailyReport;
use campaign::output::OutputLayout;
use campaign::report::{
    DayArtifacts, Exporter, JsonFile, JsonReport, RoadmapInput, RoadmapMarkdown, day_exporters,
    write_day_artifacts,
};

fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_slice(&fs::read(&path).expect("the fixture exists"))
        .expect("the fixture parses")
}

#[test]
fn every_day_exporter_writes_what_it_wrote_before() {
    let report: DailyReport = fixture("day_report.json");
    let comparison: Comparison = fixture("comparison.json");
    let curves = day_curves(&report);
    let day = DayArtifacts {
        report: &report,
        comparison: Some(&comparison),
        curves: &curves,
    };
    for exporter in day_exporters() {
        let bytes = exporter.render(&day).expect("renders");
        let text = String::from_utf8(bytes).expect("text");
        insta::assert_snapshot!(exporter.format().replace(' ', "_"), text);
    }
    // The JSON report reads back as the report it was written from.
    let json = JsonReport.render(&report).expect("renders");
    let again: DailyReport = serde_json::from_slice(&json).expect("parses");
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        serde_json::to_value(&report).unwrap()
    );
}

/// The roadmap from a real analysis of a profiled `planted_work` day
/// (written before analyses carried a decision: `campaign roadmap` makes
/// it from the plan, as here).
#[test]
fn the_roadmap_writes_what_it_wrote_before() {
    let mut analysis: BottleneckAnalysis = fixture("bottleneck_analysis.json");
    assert!(analysis.decision.is_none());
    analysis.decision = plan_decision(&analysis.remedy_plan, analysis.profiled_time_s);
    let input = RoadmapInput {
        analysis: &analysis,
        source: Path::new("results/fixture/bottleneck_analysis.json"),
    };
    let text = String::from_utf8(RoadmapMarkdown.render(&input).expect("renders")).expect("text");
    insta::assert_snapshot!("roadmap", text);
}

#[test]
fn a_file_that_cannot_be_written_does_not_stop_the_others() {
    let report: DailyReport = fixture("day_report.json");
    let dir = tempfile::tempdir().unwrap();
    let layout = OutputLayout::create(dir.path(), "fixture").expect("a writable folder");
    // A file where the HTML folder should be.
    fs::write(layout.campaign_dir.join("html"), b"in the way").unwrap();
    let curves = day_curves(&report);
    let written = write_day_artifacts(
        &layout,
        DayArtifacts {
            report: &report,
            comparison: None,
            curves: &curves,
        },
    );
    assert_eq!(written.failures.len(), 1, "{:?}", written.failures);
    assert!(written.failures[0].starts_with("HTML page not written"));
    let formats: Vec<&str> = written.files.iter().map(|(f, _)| *f).collect();
    assert_eq!(
        formats,
        ["results.csv", "results.jsonl", "junit.xml", "summary.md"]
    );
    for (_, path) in &written.files {
        assert!(fs::metadata(path).unwrap().len() > 0, "{}", path.display());
    }
    // Nothing half-written is left behind.
    let leftovers: Vec<_> = fs::read_dir(&layout.campaign_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Every JSON file but the day report goes through `JsonFile`: pretty and
/// without a final newline, the bytes `write_json` wrote before, into a
/// folder created on the way; its failure names the file.
#[test]
fn json_files_keep_their_bytes_and_name_the_file_they_could_not_write() {
    let comparison: Comparison = fixture("comparison.json");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not/yet/comparison.json");
    JsonFile::write(&path, &comparison).expect("written");
    let bytes = fs::read(&path).expect("the file exists");
    assert_eq!(bytes, serde_json::to_vec_pretty(&comparison).unwrap());
    assert_eq!(bytes.last(), Some(&b'}'), "no final newline");
    assert_eq!(
        JsonFile::text(&comparison).expect("renders").as_bytes(),
        bytes
    );

    let blocked = dir.path().join("not/yet/comparison.json/inside.json");
    let error = JsonFile::write(&blocked, &comparison)
        .expect_err("a file is in the way")
        .to_string();
    assert!(error.contains("comparison.json"), "{error}");
}
