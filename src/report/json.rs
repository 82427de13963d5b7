use super::{DailyReport, Exporter, OutputError};

/// The canonical report: pretty JSON, schema version 1.
pub struct JsonExporter;

impl Exporter for JsonExporter {
    fn extension(&self) -> &'static str {
        "json"
    }

    fn serialize(&self, report: &DailyReport) -> Result<Vec<u8>, OutputError> {
        let mut bytes = serde_json::to_vec_pretty(report)?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}
