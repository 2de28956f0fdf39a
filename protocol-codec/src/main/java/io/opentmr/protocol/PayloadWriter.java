package io.opentmr.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import java.util.List;
import java.util.function.BiConsumer;

/** Writes payload fields in the protocol's encodings; the message constructors already checked ranges. */
final class PayloadWriter {

    private final ByteBuf buf;

    PayloadWriter(ByteBuf buf) {
        this.buf = buf;
    }

    void u8(int value) {
        buf.writeByte(value);
    }

    void u16(int value) {
        buf.writeShort(value);
    }

    void u32(long value) {
        buf.writeInt((int) value);
    }

    void u64(long value) {
        buf.writeLong(value);
    }

    void bool(boolean value) {
        buf.writeByte(value ? 1 : 0);
    }

    void string(String value) {
        int lengthIndex = buf.writerIndex();
        buf.writeShort(0);
        int length = ByteBufUtil.writeUtf8(buf, value);
        buf.setShort(lengthIndex, length);
    }

    void bytes(Bytes value) {
        buf.writeInt(value.length());
        buf.writeBytes(value.unsafeArray());
    }

    <T> void list(List<T> values, BiConsumer<PayloadWriter, T> element) {
        buf.writeInt(values.size());
        for (T value : values) {
            element.accept(this, value);
        }
    }
}
