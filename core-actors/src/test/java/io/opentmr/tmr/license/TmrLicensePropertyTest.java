package io.opentmr.tmr.license;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.opentmr.protocol.AccessMode;
import io.opentmr.protocol.Allocation;
import io.opentmr.protocol.Bytes;
import io.opentmr.protocol.CmError;
import io.opentmr.protocol.CryptDirection;
import io.opentmr.protocol.LeaseGrant;
import io.opentmr.protocol.LicenseKey;
import io.opentmr.protocol.Message;
import io.opentmr.protocol.ProductInfo;
import io.opentmr.protocol.Serial;
import io.opentmr.tmr.backend.PeerGroup;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.persistence.testkit.PersistenceTestKitPlugin;
import org.apache.pekko.persistence.testkit.PersistenceTestKitSnapshotPlugin;

/**
 * The real {@link TmrLicense} (journal and snapshots in the persistence testkit) over a real
 * {@link PeerGroup} of three in-memory {@link FakeBackend}s, under random sequences of accesses, releases,
 * unit decrements, crypts, backends going down (noticed at once or one step late) and coming back (re-synced
 * at once or slowly), inventory reports and restarts of the actor. The test plays the virtual container:
 * it sends {@code Copies} as the quorum of the fakes says, and re-syncs a backend (LIST_ALLOCATIONS, then
 * {@code Resync}) when it comes up or the license asks.
 *
 * <p>Checked after every step, against a model built from the node's own answers: the open handles never
 * take more seats than the quantity; every granted seat had two acknowledged ALLOCATEs before the node
 * decided; the units the node reports are the initial units less every decrement it confirmed, and two
 * copies hold that value. With every backend up and re-synced: each fake holds exactly the open handles
 * and the node's units.
 *
 * <p>Deterministic: the fakes answer on the caller's thread (or, while "slow", when the test opens them),
 * and after every step the test waits until the actor has handled what the step caused, so every run of a
 * sequence interleaves the same way and jqwik's shrinking finds a minimal one.
 */
class TmrLicensePropertyTest {

    private static final Duration REPLY = Duration.ofSeconds(5);
    /** The PeerGroup's bound on a backend call: well inside REPLY, so an answer held back is a failure. */
    private static final Duration BACKEND_TIMEOUT = Duration.ofMillis(500);
    private static final long UNITS = 100;
    private static final long FIRM = 6_000_010;
    private static final long PRODUCT = 42;
    private static final AtomicLong TMR_IDS = new AtomicLong();
    /** Every handle of the test is opened and used by one session. */
    private static final long SESSION = 1;

    private static ActorTestKit kit;

    @BeforeContainer
    static void startKit() {
        Config config = PersistenceTestKitPlugin.getInstance().config()
                .withFallback(PersistenceTestKitSnapshotPlugin.getInstance().config())
                .withFallback(ConfigFactory.load());
        kit = ActorTestKit.create("tmr-license-property", config);
    }

    @AfterContainer
    static void stopKit() {
        kit.shutdownTestKit();
    }

    enum Kind { ACCESS, RELEASE, DECREMENT, CRYPT, DOWN, UP, OPEN, INVENTORY, RESTART, SETTLE }

    /**
     * One action. {@code late}: for DOWN, the license hears of it only after the next step (the link is gone
     * at once, the watcher's report comes later); for UP, the backend answers the re-sync only at OPEN.
     */
    record Step(Kind kind, AccessMode mode, int station, int backend, int pick, long amount, boolean late) {
        @Override
        public String toString() {
            return switch (kind) {
                case ACCESS -> "ACCESS(" + mode + ", station " + station + ")";
                case RELEASE, CRYPT -> kind + "(#" + pick + ")";
                case DECREMENT -> "DECREMENT(#" + pick + ", " + amount + ")";
                case DOWN -> "DOWN(" + backend + (late ? ", noticed late" : "") + ")";
                case UP -> "UP(" + backend + (late ? ", slow re-sync" : "") + ")";
                case OPEN -> "OPEN(" + backend + ")";
                default -> kind.toString();
            };
        }
    }

    @Property(tries = 60)
    void seatsUnitsAndBackendsStayConsistent(@ForAll @IntRange(min = 1, max = 3) int quantity,
                                             @ForAll("steps") List<Step> steps) {
        Rig rig = new Rig(quantity);
        try {
            rig.start();
            for (Step step : steps) {
                rig.apply(step);
                rig.checkEveryStep(step);
            }
            rig.settle();
        } finally {
            rig.stop();
        }
    }

    @Provide
    Arbitrary<List<Step>> steps() {
        Arbitrary<AccessMode> modes = Arbitraries.frequency(List.of(
                Tuple.of(7, AccessMode.USERLIMIT),
                Tuple.of(1, AccessMode.EXCLUSIVE),
                Tuple.of(1, AccessMode.NOUSERLIMIT),
                Tuple.of(1, AccessMode.STATIONSHARE)));
        Arbitrary<Kind> kinds = Arbitraries.frequency(List.of(
                Tuple.of(30, Kind.ACCESS),
                Tuple.of(15, Kind.RELEASE),
                Tuple.of(10, Kind.DECREMENT),
                Tuple.of(3, Kind.CRYPT),
                Tuple.of(9, Kind.DOWN),
                Tuple.of(9, Kind.UP),
                Tuple.of(4, Kind.OPEN),
                Tuple.of(4, Kind.INVENTORY),
                Tuple.of(2, Kind.RESTART),
                Tuple.of(2, Kind.SETTLE)));
        Arbitrary<Step> step = Combinators.combine(kinds, modes, Arbitraries.integers().between(0, 2),
                Arbitraries.integers().between(0, 2), Arbitraries.integers().between(0, 9),
                Arbitraries.longs().between(1, 30), Arbitraries.of(true, false)).as(Step::new);
        return step.list().ofMaxSize(40);
    }

    /** The license under test, its three fakes, and the model of what the node told its clients. */
    static final class Rig {

        private final long quantity;
        private final LicenseKey key = new LicenseKey(FIRM, PRODUCT, TMR_IDS.incrementAndGet());
        private final ProductInfo product;
        private final AtomicLong sequence = new AtomicLong();
        private final FakeBackend[] fakes = new FakeBackend[3];
        private final PeerGroup peers = new PeerGroup(3, Clock.systemUTC(), BACKEND_TIMEOUT);
        private final Recorder recorder = new Recorder(sequence);
        private final TestProbe<TmrLicense.Reply> replies = kit.createTestProbe();
        private final TestProbe<Optional<Seat>> barrier = kit.createTestProbe();
        private final long seed = 42;
        private ActorRef<TmrLicense.Command> license;
        private int incarnation;
        /** A DOWN the license hears of after the next step. */
        private boolean copiesOwed;

        /** The model: handles the node granted and not yet released, and the units it confirmed. */
        private final Map<Long, Step> open = new HashMap<>();
        private long units = UNITS;
        private long nextOperation = 1;
        private long nextRequest = 1;

        Rig(long quantity) {
            this.quantity = quantity;
            this.product = new ProductInfo(FIRM, PRODUCT, 0xFF, "property", quantity, 0, key.tmrId(), true, UNITS,
                    0, 0, 0, 0, 0);
            for (int i = 0; i < 3; i++) {
                fakes[i] = new FakeBackend(i, key, quantity, UNITS, sequence);
            }
        }

        void start() {
            spawn();
            for (int i = 0; i < 3; i++) {
                linkUp(i);
            }
            sendCopies();
            for (int i = 0; i < 3; i++) {
                resync(i);
            }
            quiesce();
        }

        void stop() {
            if (license != null) {
                kit.stop(license, REPLY);
            }
        }

        private void spawn() {
            // A fixed seed per run: handle ids are the same every time the sequence is replayed.
            SecureRandom random;
            try {
                random = SecureRandom.getInstance("SHA1PRNG");
            } catch (java.security.NoSuchAlgorithmException e) {
                throw new IllegalStateException(e);
            }
            random.setSeed(seed + incarnation++);
            license = kit.spawn(TmrLicense.create(key, peers, recorder, Clock.systemUTC(), random,
                    handleId -> java.nio.ByteBuffer.allocate(16).putLong(handleId).putLong(~handleId).array(),
                    new TmrLicense.Settings(BACKEND_TIMEOUT, Duration.ofHours(1), 5)));
        }

        // --- the virtual container's part ------------------------------------------------------------------

        private void linkUp(int backend) {
            FakeBackend fake = fakes[backend];
            peers.linkUp(backend, fake);
            Message granted = fake.now(new Message.LeaseAcquire(LeaseGrant.ACTIVE_LEASE, "property-node",
                    peers.targetEpoch(), Duration.ofMinutes(10).toMillis()));
            peers.granted(backend, ((Message.LeaseGranted) granted).grant());
        }

        /** What the quorum of the fakes that are up says, as the virtual container sends it on every report. */
        private void sendCopies() {
            BitSet counted = new BitSet();
            for (int i = 0; i < 3; i++) {
                if (fakes[i].isUp()) {
                    counted.set(i);
                }
            }
            if (counted.cardinality() < 2) {
                license.tell(new TmrLicense.Copies(new BitSet(), null));
                return;
            }
            license.tell(new TmrLicense.Copies(counted, product));
        }

        /** LIST_ALLOCATIONS of one backend, then Resync, as VirtualContainer.startResync does. */
        private void resync(int backend) {
            if (!fakes[backend].isUp()) {
                return;
            }
            List<Allocation> held = new ArrayList<>();
            long after = 0;
            while (true) {
                Message page = fakes[backend].now(new Message.ListAllocations(after, 2));
                Message.AllocationList list = (Message.AllocationList) page;
                held.addAll(list.allocations());
                if (!list.more() || list.allocations().isEmpty()) {
                    break;
                }
                after = list.allocations().get(list.allocations().size() - 1).tmrHandleId();
            }
            license.tell(new TmrLicense.Resync(backend, held.stream().filter(a -> a.key().equals(key)).toList()));
        }

        /**
         * Waits until the actor handled everything sent so far and what that caused: three round trips in a
         * row, each behind whatever the one before left in the mailbox (a reply of a fake becomes a message to
         * itself while the actor handles the command that asked). Then does the re-syncs the license asked for.
         */
        private void quiesce() {
            for (int round = 0; round < 10; round++) {
                for (int i = 0; i < 3; i++) {
                    license.tell(new TmrLicense.SeatOf(0, barrier.getRef()));
                    barrier.receiveMessage(REPLY);
                }
                Set<Integer> asked = new HashSet<>();
                Integer backend;
                while ((backend = recorder.resyncs.poll()) != null) {
                    asked.add(backend);
                }
                if (asked.isEmpty()) {
                    return;
                }
                asked.forEach(this::resync);
            }
        }

        // --- steps -----------------------------------------------------------------------------------------

        void apply(Step step) {
            boolean owed = copiesOwed;
            copiesOwed = false;
            switch (step.kind()) {
                case ACCESS -> access(step);
                case RELEASE -> pick(step).ifPresent(this::release);
                case DECREMENT -> pick(step).ifPresent(handle -> decrement(handle, step.amount()));
                case CRYPT -> pick(step).ifPresent(this::crypt);
                case DOWN -> {
                    FakeBackend fake = fakes[step.backend()];
                    if (fake.isUp()) {
                        fake.down();
                        peers.linkDown(step.backend(), fake);
                        if (step.late()) {
                            copiesOwed = true;
                        } else {
                            sendCopies();
                        }
                    }
                }
                case UP -> {
                    FakeBackend fake = fakes[step.backend()];
                    if (!fake.isUp()) {
                        fake.up(step.late());
                        linkUp(step.backend());
                        sendCopies();
                        resync(step.backend());
                    }
                }
                case OPEN -> fakes[step.backend()].open();
                case INVENTORY -> sendCopies();
                case RESTART -> {
                    kit.stop(license, REPLY);
                    spawn();
                    sendCopies();
                    for (int i = 0; i < 3; i++) {
                        resync(i);
                    }
                }
                case SETTLE -> settle();
            }
            if (owed) {
                sendCopies();
            }
            quiesce();
        }

        private Optional<Long> pick(Step step) {
            if (open.isEmpty()) {
                return Optional.empty();
            }
            List<Long> handles = new ArrayList<>(open.keySet());
            handles.sort(null);
            return Optional.of(handles.get(step.pick() % handles.size()));
        }

        private void access(Step step) {
            TmrLicense.Client client = new TmrLicense.Client("10.0.0." + step.station(), "host-" + step.station(),
                    "user", 1000 + step.station(), 1);
            license.tell(new TmrLicense.Access(0x1, step.mode(), client, nextRequest++, replies.getRef()));
            TmrLicense.Reply reply = replies.receiveMessage(REPLY);
            if (reply instanceof TmrLicense.Granted ok) {
                long handle = ok.handleId();
                assertTrue(admits(step), () -> "granted " + step + " while the model holds " + open.values()
                        + " of quantity " + quantity);
                open.put(handle, step);
                long decidedAt = recorder.grantedAt.getOrDefault(handle, Long.MAX_VALUE);
                Set<Integer> acked = new HashSet<>();
                for (FakeBackend fake : fakes) {
                    fake.acks().stream().filter(ack -> ack.handleId() == handle && ack.sequence() <= decidedAt)
                            .forEach(ack -> acked.add(ack.backend()));
                }
                assertTrue(acked.size() >= 2, () -> "handle " + handle + " granted with acknowledgements of "
                        + acked + " only");
            } else if (reply instanceof TmrLicense.NotServing) {
                assertTrue(!peers.holdsLease(), () -> step + " answered NOT_ACTIVE while the node holds the lease");
            } else if (reply instanceof TmrLicense.Refused error) {
                if (error.code() == CmError.NO_MORE_LICENSES.code() || error.code() == CmError.EXCLUSIVE_CONFLICT.code()) {
                    assertTrue(!admits(step), () -> step + " refused (" + error + ") while the model holds "
                            + open.values() + " of quantity " + quantity);
                } else {
                    assertEquals(CmError.REDUNDANCY_SERVER_MISSING.code(), error.code(), error.toString());
                }
            } else {
                fail("unexpected answer to ACCESS: " + reply);
            }
        }

        /** Whether the model's open handles leave room for this access, by the rules of a backend. */
        private boolean admits(Step step) {
            if (open.values().stream().anyMatch(held -> held.mode() == AccessMode.EXCLUSIVE)) {
                return false;
            }
            long inUse = seatsInUse(open.values());
            boolean stationHolds = open.values().stream().anyMatch(held -> held.mode() == AccessMode.STATIONSHARE
                    && held.station() == step.station());
            return switch (step.mode()) {
                case EXCLUSIVE -> open.isEmpty() && quantity > 0;
                case USERLIMIT -> inUse < quantity;
                case STATIONSHARE -> stationHolds || inUse < quantity;
                case NOUSERLIMIT -> true;
            };
        }

        private static long seatsInUse(java.util.Collection<Step> held) {
            long userLimit = held.stream().filter(h -> h.mode() == AccessMode.USERLIMIT).count();
            long stations = held.stream().filter(h -> h.mode() == AccessMode.STATIONSHARE).map(Step::station)
                    .distinct().count();
            return userLimit + stations;
        }

        private void release(long handle) {
            license.tell(new TmrLicense.Release(handle, SESSION, replies.getRef()));
            TmrLicense.Reply reply = replies.receiveMessage(REPLY);
            if (reply instanceof TmrLicense.NotServing) {
                assertTrue(!peers.holdsLease(), "RELEASE answered NOT_ACTIVE while the node holds the lease");
                return;
            }
            assertEquals(TmrLicense.Released.INSTANCE, reply, "release of an open handle");
            open.remove(handle);
            // Repeated (its answer lost): still OK, and nothing changes.
            license.tell(new TmrLicense.Release(handle, SESSION, replies.getRef()));
            assertEquals(TmrLicense.Released.INSTANCE, replies.receiveMessage(REPLY), "repeated release");
        }

        private void decrement(long handle, long amount) {
            license.tell(new TmrLicense.DecrementUnits(handle, SESSION, nextOperation++, amount, replies.getRef()));
            TmrLicense.Reply reply = replies.receiveMessage(REPLY);
            if (reply instanceof TmrLicense.NotServing) {
                assertTrue(!peers.holdsLease(), "DECREMENT answered NOT_ACTIVE while the node holds the lease");
            } else if (reply instanceof TmrLicense.UnitsLeft ok) {
                assertEquals(units - amount, ok.remaining(), "units after decrementing " + amount);
                units = ok.remaining();
            } else if (reply instanceof TmrLicense.Refused error && (error.code() == CmError.UNIT_COUNTER_ZERO.code()
                    || error.code() == CmError.UNIT_COUNTER_TOO_SMALL.code())) {
                assertTrue(amount > units, () -> "decrement of " + amount + " refused (" + error + ") with "
                        + units + " units");
            } else if (reply instanceof TmrLicense.Refused error) {
                assertEquals(CmError.REDUNDANCY_SERVER_MISSING.code(), error.code(), error.toString());
            } else {
                fail("unexpected answer to DECREMENT_UNITS: " + reply);
            }
        }

        private void crypt(long handle) {
            Bytes data = Bytes.of(new byte[] {1, 2, 3, 4, 5, 6, 7, 8});
            license.tell(new TmrLicense.Crypt(handle, SESSION, CryptDirection.ENCRYPT, 7, data, replies.getRef()));
            TmrLicense.Reply reply = replies.receiveMessage(REPLY);
            if (reply instanceof TmrLicense.NotServing) {
                assertTrue(!peers.holdsLease(), "CRYPT answered NOT_ACTIVE while the node holds the lease");
            } else if (reply instanceof TmrLicense.Refused error) {
                assertEquals(CmError.REDUNDANCY_SERVER_MISSING.code(), error.code(), error.toString());
            } else {
                assertEquals(new TmrLicense.Crypted(FakeBackend.transform(7, data)), reply);
            }
        }

        // --- invariants ------------------------------------------------------------------------------------

        void checkEveryStep(Step step) {
            assertTrue(seatsInUse(open.values()) <= quantity, () -> "after " + step + ": " + open.values()
                    + " take more than " + quantity + " seats");
            assertTrue(open.size() == 1 || open.values().stream().noneMatch(h -> h.mode() == AccessMode.EXCLUSIVE),
                    () -> "after " + step + ": an EXCLUSIVE handle is not alone: " + open.values());
            int agreeing = 0;
            for (FakeBackend fake : fakes) {
                agreeing += fake.units() == units ? 1 : 0;
            }
            int copies = agreeing;
            assertTrue(copies >= 2, () -> "after " + step + ": only " + copies + " copies hold the " + units
                    + " units the node confirmed: " + unitsOfFakes());
            if (!open.isEmpty()) {
                long handle = open.keySet().iterator().next();
                license.tell(new TmrLicense.GetInfo(handle, SESSION, replies.getRef()));
                TmrLicense.Reply info = replies.receiveMessage(REPLY);
                if (info instanceof TmrLicense.NotServing) {
                    assertTrue(!peers.holdsLease(), "INFO answered NOT_ACTIVE while the node holds the lease");
                } else if (info instanceof TmrLicense.Refused error) {
                    // Withdrawn (fewer than two copies): the handle stays valid and waits for the quorum.
                    assertEquals(CmError.REDUNDANCY_SERVER_MISSING.code(), error.code(), () -> "info of open handle "
                            + handle + " after " + step + ": " + error);
                } else {
                    assertEquals(units, ((TmrLicense.Described) info).product().units(), () -> "after " + step
                            + ": units the node reports; fakes " + unitsOfFakes());
                }
            }
        }

        private String unitsOfFakes() {
            return "[" + fakes[0].units() + ", " + fakes[1].units() + ", " + fakes[2].units() + "]";
        }

        /**
         * Every backend up and re-synced: each holds exactly the open handles and the node's units. Bounded:
         * re-syncs the license asks for are done, until it reports three usable backends.
         */
        void settle() {
            for (int i = 0; i < 3; i++) {
                FakeBackend fake = fakes[i];
                if (!fake.isUp()) {
                    fake.up(false);
                    linkUp(i);
                    sendCopies();
                    resync(i);
                }
                fake.open();
            }
            if (copiesOwed) {
                copiesOwed = false;
                sendCopies();
            }
            quiesce();
            for (int round = 0; round < 10 && recorder.usable != 3; round++) {
                for (int i = 0; i < 3; i++) {
                    resync(i);
                }
                quiesce();
            }
            assertEquals(3, recorder.usable, "backends usable after re-sync");
            for (FakeBackend fake : fakes) {
                assertEquals(open.keySet(), fake.held(), () -> fake.backendName() + " after re-sync");
                assertEquals(units, fake.units(), () -> fake.backendName() + "'s units after re-sync");
            }
        }
    }

    /** The license's listener: what it was told, from the actor's thread. */
    static final class Recorder implements TmrLicense.Parent {

        final ConcurrentLinkedQueue<Integer> resyncs = new ConcurrentLinkedQueue<>();
        /** Per handle, the last acknowledgement sequence when the node told of the grant (just before the reply). */
        final Map<Long, Long> grantedAt = new ConcurrentHashMap<>();
        volatile int usable;
        private final AtomicLong sequence;

        Recorder(AtomicLong sequence) {
            this.sequence = sequence;
        }

        @Override
        public void seatsChanged(LicenseKey key, long inUse, int handles, int usable) {
            this.usable = usable;
        }

        @Override
        public void opened(LicenseKey key, long handleId) {
            // A recovered table tells its seats again: the first telling, the live grant, is the one kept.
            grantedAt.putIfAbsent(handleId, sequence.get());
        }

        @Override
        public void closed(LicenseKey key, long handleId) {
        }

        @Override
        public void needsResync(LicenseKey key, int backend) {
            resyncs.add(backend);
        }

        @Override
        public void recovered(LicenseKey key, ActorRef<TmrLicense.Command> license) {
            // The rig plays the virtual container: it sends the copies and re-syncs after every (re)start itself.
        }
    }
}
