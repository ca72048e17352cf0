// SPDX-License-Identifier: GPL-3.0-or-later
// Master key rotation: every device secret re-encrypted under a new key ring in
// one transaction, then the WAL checkpointed so old tokens leave it.
#include <string>
#include <vector>

#include "store/store_impl.h"
#include "util/clock.h"

namespace bzs::store {

void Store::reencrypt_all(const KeyRing& next) {
    if (next.empty()) {
        throw KeyFileError("the new key ring is empty");
    }
    auto& I = *impl_;
    const std::int64_t now = util::wall_clock_now();
    {
        sql::Transaction txn(I.db);
        std::vector<DeviceRow> rows;
        {
            sql::Stmt st(I.db, "SELECT " BZS_DEVICE_COLUMNS " FROM devices");
            rows = read_devices(st);
        }
        sql::Stmt up(I.db, "UPDATE devices SET secret_token = ?1, key_id = ?2 WHERE id = ?3");
        for (const auto& r : rows) {
            const core::crypto::SecretBytes secret = I.decrypt(r, &next);
            up.reset();
            up.bind(1, next.current().encrypt(secret.view(), now))
                .bind(2, next.current_id())
                .bind(3, r.id)
                .run();
        }
        I.put_setting("master_key_id", std::to_string(next.current_id()));
        txn.commit();
    }
    I.keys = next;
    // Move the new tokens into the main file so the WAL no longer holds pages
    // with tokens under the retired key (best effort: readers may block it).
    sqlite3_wal_checkpoint_v2(I.db.get(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
}

}  // namespace bzs::store
