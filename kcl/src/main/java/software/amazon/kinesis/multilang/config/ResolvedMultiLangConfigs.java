package software.amazon.kinesis.multilang.config;

import software.amazon.kinesis.checkpoint.CheckpointConfig;
import software.amazon.kinesis.coordinator.CoordinatorConfig;
import software.amazon.kinesis.leases.LeaseManagementConfig;
import software.amazon.kinesis.lifecycle.LifecycleConfig;
import software.amazon.kinesis.metrics.MetricsConfig;
import software.amazon.kinesis.processor.ProcessorConfig;
import software.amazon.kinesis.processor.ShardRecordProcessorFactory;
import software.amazon.kinesis.retrieval.RetrievalConfig;

/**
 * Public view of the seven KCL configs that the MultiLangDaemon derives from its properties file.
 *
 * <p>Why this class lives in a KCL package: {@code MultiLangDaemonConfiguration.resolvedConfiguration}
 * (which applies every property such as {@code failoverTimeMillis}, {@code disableWorkerMetrics},
 * the graceful-handoff and coordinator-table settings to the right config object) is
 * package-private, and so is the {@code ResolvedConfiguration} it returns. The stock daemon only
 * turns them straight into a Kinesis {@code Scheduler}; fleet mode needs them separately so that
 * the DynamoDB Streams adapter can build the scheduler instead. Reusing KCL's resolution keeps
 * every documented MultiLangDaemon property working without copying KCL code.
 */
public final class ResolvedMultiLangConfigs {
    public final CheckpointConfig checkpoint;
    public final CoordinatorConfig coordinator;
    public final LeaseManagementConfig leaseManagement;
    public final LifecycleConfig lifecycle;
    public final MetricsConfig metrics;
    public final ProcessorConfig processor;
    /** KCL's retrieval config for a plain Kinesis stream; only some of its settings are reused. */
    public final RetrievalConfig kinesisRetrieval;

    private ResolvedMultiLangConfigs(MultiLangDaemonConfiguration.ResolvedConfiguration resolved) {
        this.checkpoint = resolved.getCheckpointConfig();
        this.coordinator = resolved.getCoordinatorConfig();
        this.leaseManagement = resolved.getLeaseManagementConfig();
        this.lifecycle = resolved.getLifecycleConfig();
        this.metrics = resolved.getMetricsConfig();
        this.processor = resolved.getProcessorConfig();
        this.kinesisRetrieval = resolved.getRetrievalConfig();
    }

    /** Builds the clients (from the properties' endpoints and credentials) and all configs. */
    public static ResolvedMultiLangConfigs resolve(
            MultiLangDaemonConfiguration configuration, ShardRecordProcessorFactory processorFactory) {
        return new ResolvedMultiLangConfigs(configuration.resolvedConfiguration(processorFactory));
    }
}
