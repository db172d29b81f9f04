//! Issue 14, defect 7: fatal errors of the idempotent producer were never checked, while /readyz said 200 and
//! nothing could be published any more. librdkafka's mock cluster answers the runner's first produce request
//! with OUT_OF_ORDER_SEQUENCE_NUMBER (a sequence desynchronisation librdkafka treats as fatal): the runner
//! stops with an error (the process exits and is restarted) and is not ready any more.

use std::sync::Arc;
use std::time::{Duration, Instant};

use distillery_core::codec::fixtures;
use distillery_core::{Input, Metrics, Record, Stage, StageError, Topic};
use distillery_kafka::{KafkaConfig, KafkaPublisher, KafkaRuntimeError};
use distillery_runtime::http::Ready;
use distillery_runtime::{Publisher, RuntimeConfig};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use tokio_util::sync::CancellationToken;

/// One chunk per document.
struct Chunker;

impl Stage for Chunker {
    fn name(&self) -> &'static str {
        "chunker"
    }
    fn inputs(&self) -> &'static [Topic] {
        &[Topic::Documents]
    }
    async fn process(&self, input: Input) -> Result<Vec<Record>, StageError> {
        let Some(Record::Document(doc)) = input.as_record() else { unreachable!() };
        let mut c = fixtures::chunk();
        c.document_id = doc.id.clone();
        Ok(vec![Record::Chunk(c)])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_producer_error_stops_the_runner_and_readiness() {
    let mock = MockCluster::new(1).expect("librdkafka mock cluster");
    let cfg = KafkaConfig {
        brokers: mock.bootstrap_servers(),
        topic_prefix: "fatal.".into(),
        group_prefix: "fatal-".into(),
        create_topics: false,
        partitions: 1,
        session_timeout_ms: 6000,
        statistics_interval_ms: 0,
        ..KafkaConfig::default()
    };
    let names = cfg.topic_names();
    for t in Topic::ALL {
        mock.create_topic(&names.name(t), 1, 1).expect("topic");
    }
    // The input, published before the fault is armed.
    let input = KafkaPublisher::new(&cfg).unwrap();
    input.publish(vec![Record::Document(fixtures::document())]).await.expect("input published");
    input.flush(Duration::from_secs(10));

    let publisher = Arc::new(KafkaPublisher::new(&cfg).unwrap());
    let (ready, cancel) = (Ready::default(), CancellationToken::new());
    let (c, r, p, k) = (cfg.clone(), ready.clone(), publisher.clone(), cancel.clone());
    let runner = tokio::spawn(async move {
        distillery_kafka::run_stage_with(&c, &RuntimeConfig::default(), Arc::new(Chunker), Metrics::isolated(), r, p, k)
            .await
    });
    let started = Instant::now();
    while !ready.get() && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready.get(), "the runner became ready");
    // The runner's first produce request: a sequence desynchronisation.
    mock.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER]);
    let result = tokio::time::timeout(Duration::from_secs(120), runner).await.expect("the runner stops").unwrap();
    assert!(matches!(result, Err(KafkaRuntimeError::FatalProducer(_))), "{result:?}");
    assert!(publisher.fatal_error().is_some());
    assert!(!ready.get(), "not ready any more");
    cancel.cancel();
}
