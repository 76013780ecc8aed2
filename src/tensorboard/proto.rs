//! The protocol buffers of TensorBoard's event files, as far as adamant writes them: field
//! numbers and types of TensorFlow's `event.proto`, `summary.proto` and `histogram.proto`
//! (the ones `torch.utils.tensorboard` writes too). prost's derive encodes and decodes them;
//! fields adamant never writes are left out, and a reader skips unknown fields anyway.

/// One record of an event file (`tensorflow.Event`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the Unix epoch when the event was written.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The training step the event belongs to.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// Only in the first record of a file: `"brain.Event:2"`.
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    /// The values logged at this step.
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// A set of tagged values (`tensorflow.Summary`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The values, each with its tag.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// One tagged value (`tensorflow.Summary.Value`): a scalar or a histogram (in the .proto these
/// two fields are members of one `oneof`, which encodes as whichever of them is set).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    /// The name TensorBoard groups and plots by (`train/loss`).
    #[prost(string, tag = "1")]
    pub tag: String,
    /// A scalar.
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
    /// A histogram.
    #[prost(message, optional, tag = "5")]
    pub histo: Option<HistogramProto>,
}

/// A histogram of values (`tensorflow.HistogramProto`): bucket `i` counts the values in
/// `(bucket_limit[i-1], bucket_limit[i]]` (from minus infinity for the first).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistogramProto {
    /// The smallest value.
    #[prost(double, tag = "1")]
    pub min: f64,
    /// The largest value.
    #[prost(double, tag = "2")]
    pub max: f64,
    /// How many values.
    #[prost(double, tag = "3")]
    pub num: f64,
    /// Their sum.
    #[prost(double, tag = "4")]
    pub sum: f64,
    /// The sum of their squares.
    #[prost(double, tag = "5")]
    pub sum_squares: f64,
    /// The right edge of each bucket.
    #[prost(double, repeated, tag = "6")]
    pub bucket_limit: Vec<f64>,
    /// The count of each bucket.
    #[prost(double, repeated, tag = "7")]
    pub bucket: Vec<f64>,
}
