package orderstream.kcl;

import com.amazonaws.services.dynamodbv2.streamsadapter.model.DynamoDBStreamsProcessRecordsInput;
import com.amazonaws.services.dynamodbv2.streamsadapter.processor.DynamoDBStreamsShardRecordProcessor;
import java.util.ArrayList;
import software.amazon.kinesis.lifecycle.events.InitializationInput;
import software.amazon.kinesis.lifecycle.events.LeaseLostInput;
import software.amazon.kinesis.lifecycle.events.ProcessRecordsInput;
import software.amazon.kinesis.lifecycle.events.ShardEndedInput;
import software.amazon.kinesis.lifecycle.events.ShutdownRequestedInput;
import software.amazon.kinesis.processor.ShardRecordProcessor;

/**
 * Lets KCL multilang's own {@code MultiLangShardRecordProcessor} (which runs the Python child
 * process and speaks the JSON protocol with it) serve as a DynamoDB Streams processor.
 *
 * <p>Why a wrapper: {@code StreamsSchedulerFactory} rejects any processor that is not a
 * {@link DynamoDBStreamsShardRecordProcessor}. Everything is delegated unchanged.
 */
final class DynamoDBStreamsMultiLangProcessor implements DynamoDBStreamsShardRecordProcessor {
    private final ShardRecordProcessor multiLang;

    DynamoDBStreamsMultiLangProcessor(ShardRecordProcessor multiLang) {
        this.multiLang = multiLang;
    }

    @Override
    public void initialize(InitializationInput input) {
        multiLang.initialize(input); // starts the child process (executableName)
    }

    /**
     * The call KCL makes. Overrides the interface's default (which would re-wrap the batch) and
     * passes the batch straight on: the records are the adapter's DynamoDBStreamsClientRecord,
     * whose data() is the stream record as JSON, so the child receives that JSON base64-encoded
     * in "data", with the stream sequence number as "partitionKey" and "sequenceNumber".
     */
    @Override
    public void processRecords(ProcessRecordsInput input) {
        multiLang.processRecords(input);
    }

    /** Not called by KCL (see above); kept correct for callers that use the adapter's type. */
    @Override
    public void processRecords(DynamoDBStreamsProcessRecordsInput input) {
        multiLang.processRecords(ProcessRecordsInput.builder()
                .records(new ArrayList<>(input.records()))
                .checkpointer(input.checkpointer())
                .cacheEntryTime(input.cacheEntryTime())
                .cacheExitTime(input.cacheExitTime())
                .millisBehindLatest(input.millisBehindLatest())
                .childShards(input.childShards())
                .isAtShardEnd(input.isAtShardEnd())
                .build());
    }

    @Override
    public void leaseLost(LeaseLostInput input) {
        multiLang.leaseLost(input);
    }

    @Override
    public void shardEnded(ShardEndedInput input) {
        multiLang.shardEnded(input);
    }

    @Override
    public void shutdownRequested(ShutdownRequestedInput input) {
        multiLang.shutdownRequested(input);
    }
}
