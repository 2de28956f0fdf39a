package io.opentmr.protocol;

import java.util.List;

/**
 * A container and its product items.
 *
 * @param serial    {@code MASK-NUMBER}
 * @param cmActId   the CmActId that ties the three containers of a TMR group together
 * @param publicKey the container's Ed25519 public key (raw 32 bytes), empty where it has none
 * @param products  its product items
 */
public record ContainerInfo(Serial serial, long cmActId, Bytes publicKey, List<ProductInfo> products) {

    public ContainerInfo {
        Check.notNull(serial, "serial");
        Check.u32(cmActId, "cmActId");
        Check.notNull(publicKey, "publicKey");
        products = Check.list(products, "products");
    }
}
