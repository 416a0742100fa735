package orderstream.kcl;

import com.amazonaws.services.dynamodbv2.streamsadapter.AmazonDynamoDBStreamsAdapterClient;
import com.amazonaws.services.dynamodbv2.streamsadapter.StreamsSchedulerFactory;
import com.amazonaws.services.dynamodbv2.streamsadapter.polling.DynamoDBStreamsPollingConfig;
import java.net.URI;
import java.util.Collections;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.dynamodb.streams.DynamoDbStreamsClient;
import software.amazon.awssdk.services.dynamodb.streams.DynamoDbStreamsClientBuilder;
import software.amazon.kinesis.common.InitialPositionInStream;
import software.amazon.kinesis.common.InitialPositionInStreamExtended;
import software.amazon.kinesis.coordinator.Scheduler;
import software.amazon.kinesis.metrics.MetricsLevel;
import software.amazon.kinesis.metrics.NullMetricsFactory;
import software.amazon.kinesis.multilang.MultiLangDaemonConfig;
import software.amazon.kinesis.multilang.config.ConfigurationSettableUtils;
import software.amazon.kinesis.multilang.config.KinesisClientLibConfigurator;
import software.amazon.kinesis.multilang.config.MultiLangDaemonConfiguration;
import software.amazon.kinesis.multilang.config.ResolvedMultiLangConfigs;
import software.amazon.kinesis.processor.ShardRecordProcessorFactory;
import software.amazon.kinesis.retrieval.RetrievalConfig;
import software.amazon.kinesis.retrieval.polling.PollingConfig;

/**
 * The KCL 3 MultiLangDaemon, but reading a DynamoDB stream through the DynamoDB Streams Kinesis
 * Adapter 2.x. The adapter has no multi-language entry point, and KCL's
 * {@code MultiLangDaemon.main} always builds a plain Kinesis scheduler, hence this class.
 *
 * <p>Usage: {@code java -cp 'kcl/target/lib/*' orderstream.kcl.StreamsMultiLangDaemon kcl.properties}
 *
 * <p>The properties file is a standard MultiLangDaemon file ({@code executableName},
 * {@code applicationName}, {@code AwsCredentialsProvider}, {@code regionName},
 * {@code dynamoDBEndpoint}, {@code failoverTimeMillis}, ...) plus:
 * <ul>
 *   <li>{@code streamArn} (required): the DynamoDB stream ARN. Taken out before KCL sees the
 *       file, because KCL would validate it as a Kinesis ARN.</li>
 *   <li>{@code dynamoDBStreamsEndpoint} (optional): endpoint override for DynamoDB Streams.</li>
 * </ul>
 * {@code initialPositionInStream} may be LATEST (default) or TRIM_HORIZON; the adapter rejects
 * AT_TIMESTAMP. No Kinesis API is called, but KCL still builds a Kinesis client from
 * {@code kinesisEndpoint}/{@code regionName}; keep it on loopback in tests.
 */
public final class StreamsMultiLangDaemon {
    private static final Logger log = LoggerFactory.getLogger(StreamsMultiLangDaemon.class);

    static final String PROP_STREAM_ARN = "streamArn";
    static final String PROP_STREAMS_ENDPOINT = "dynamoDBStreamsEndpoint";
    /** Used when shutdownGraceMillis is unset: time for the child to checkpoint on SIGTERM. */
    private static final long DEFAULT_SHUTDOWN_GRACE_MILLIS = 20_000L;

    private StreamsMultiLangDaemon() {}

    public static void main(String[] args) {
        if (args.length != 1) {
            System.err.println("usage: java -cp 'lib/*' " + StreamsMultiLangDaemon.class.getName()
                    + " <multilang.properties>");
            System.exit(2);
        }
        int exitCode = 1;
        try {
            AdapterPropertiesConfigurator configurator = new AdapterPropertiesConfigurator();
            // KCL's own parsing: properties -> MultiLangDaemonConfiguration, the executor for the
            // child-process I/O, and the MultiLangRecordProcessorFactory for executableName.
            MultiLangDaemonConfig daemonConfig = new MultiLangDaemonConfig(
                    args[0], Thread.currentThread().getContextClassLoader(), configurator);
            Scheduler scheduler = buildScheduler(daemonConfig, configurator);
            long grace = daemonConfig.getMultiLangDaemonConfiguration().getShutdownGraceMillis();
            exitCode = runUntilShutdown(scheduler, grace > 0 ? grace : DEFAULT_SHUTDOWN_GRACE_MILLIS);
        } catch (Throwable t) {
            log.error("StreamsMultiLangDaemon failed", t);
        }
        System.exit(exitCode);
    }

    static Scheduler buildScheduler(MultiLangDaemonConfig daemonConfig, AdapterPropertiesConfigurator configurator) {
        MultiLangDaemonConfiguration kcl = daemonConfig.getMultiLangDaemonConfiguration();

        ShardRecordProcessorFactory processors = () ->
                new DynamoDBStreamsMultiLangProcessor(daemonConfig.getRecordProcessorFactory().shardRecordProcessor());
        ResolvedMultiLangConfigs configs = ResolvedMultiLangConfigs.resolve(kcl, processors);

        // Same region and credentials as KCL's own clients (regionName, AwsCredentialsProvider).
        Region region = configs.kinesisRetrieval.kinesisClient().serviceClientConfiguration().region();
        AwsCredentialsProvider credentials = kcl.getKinesisCredentialsProvider().build(AwsCredentialsProvider.class);
        DynamoDbStreamsClientBuilder streamsClient =
                DynamoDbStreamsClient.builder().region(region).credentialsProvider(credentials);
        if (configurator.streamsEndpoint != null) {
            streamsClient.endpointOverride(URI.create(configurator.streamsEndpoint));
        }
        // The adapter is a KinesisAsyncClient backed by DynamoDB Streams; KCL reads through it.
        AmazonDynamoDBStreamsAdapterClient adapter = new AmazonDynamoDBStreamsAdapterClient(streamsClient.build(), region);

        InitialPositionInStreamExtended initialPosition = kcl.getInitialPositionInStreamExtended() != null
                ? kcl.getInitialPositionInStreamExtended()
                : InitialPositionInStreamExtended.newInitialPosition(InitialPositionInStream.LATEST);

        // KCL's retrieval config targets a Kinesis stream by name; replace it with one that tracks
        // the DynamoDB stream through the adapter, keeping the list-shards settings.
        RetrievalConfig retrieval = new RetrievalConfig(
                        adapter,
                        StreamsSchedulerFactory.createSingleStreamTracker(configurator.streamArn, initialPosition),
                        kcl.getApplicationName())
                .listShardsBackoffTimeInMillis(configs.kinesisRetrieval.listShardsBackoffTimeInMillis())
                .maxListShardsRetryAttempts(configs.kinesisRetrieval.maxListShardsRetryAttempts());
        // The adapter requires its own polling config; apply the polling properties
        // (maxRecords, idleTimeBetweenReadsInMillis, ...) to it the way KCL would.
        DynamoDBStreamsPollingConfig polling = new DynamoDBStreamsPollingConfig(adapter);
        ConfigurationSettableUtils.resolveFields(
                kcl.getPollingConfig(), Collections.singletonMap(PollingConfig.class, polling), null, null);
        retrieval.retrievalSpecificConfig(polling);

        if (kcl.getMetricsLevel() == MetricsLevel.NONE) {
            // Otherwise KCL still starts a CloudWatch publisher (it just publishes nothing).
            configs.metrics.metricsFactory(new NullMetricsFactory());
        }

        // Adapter 2.0.x sets this to 0 itself, but only after its lease-management factory has
        // read it, so the first shard sync of a new application would then sleep KCL's default
        // 60 s inside Scheduler.initialize(). Setting it first makes the adapter's intent take
        // effect. (Only the idle time after a shard-sync task; the periodic sync is separate.)
        configs.leaseManagement.shardSyncIntervalMillis(0L);

        return StreamsSchedulerFactory.createScheduler(
                configs.checkpoint,
                configs.coordinator,
                configs.leaseManagement,
                configs.lifecycle,
                configs.metrics,
                configs.processor,
                retrieval,
                adapter);
    }

    /** Runs the scheduler; on SIGTERM asks it to shut down gracefully (like MultiLangDaemon). */
    private static int runUntilShutdown(Scheduler scheduler, long graceMillis) {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            log.info("Process terminated, starting graceful shutdown");
            try {
                scheduler.startGracefulShutdown().get(graceMillis, TimeUnit.MILLISECONDS);
                log.info("Graceful shutdown complete");
            } catch (Exception e) {
                log.error("Graceful shutdown did not complete", e);
            }
        }, "graceful-shutdown"));
        try {
            scheduler.run();
            return 0;
        } catch (Throwable t) {
            log.error("Scheduler failed", t);
            return 1;
        }
    }

    /**
     * KCL's configurator, minus the adapter-only properties, which it would otherwise reject
     * ({@code streamArn} must be a Kinesis ARN for KCL) or ignore.
     */
    static final class AdapterPropertiesConfigurator extends KinesisClientLibConfigurator {
        String streamArn;
        String streamsEndpoint;

        @Override
        public MultiLangDaemonConfiguration getConfiguration(Properties properties) {
            streamArn = trimToNull(properties.remove(PROP_STREAM_ARN));
            streamsEndpoint = trimToNull(properties.remove(PROP_STREAMS_ENDPOINT));
            if (streamArn == null) {
                throw new IllegalArgumentException("Property " + PROP_STREAM_ARN
                        + " (the DynamoDB stream ARN) is required");
            }
            // KCL insists on a stream name; with the adapter it only shows up in log lines.
            properties.putIfAbsent("streamName", tableName(streamArn));
            return super.getConfiguration(properties);
        }

        private static String trimToNull(Object value) {
            String s = value == null ? null : value.toString().trim();
            return s == null || s.isEmpty() ? null : s;
        }

        /** arn:aws:dynamodb:REGION:ACCOUNT:table/TABLE/stream/LABEL -> TABLE */
        private static String tableName(String streamArn) {
            String[] parts = streamArn.split("/");
            return parts.length >= 2 && !parts[1].isEmpty() ? parts[1] : "dynamodb-stream";
        }
    }
}
