// SPDX-License-Identifier: GPL-3.0-or-later
// Master key rotation: every device secret, pending device's code and the Pi's
// private key re-encrypted under a new key ring in one transaction, then the WAL
// checkpointed so old tokens leave it.
#include <exception>
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
        // A pending device has a code and no secret; an active one the reverse.
        sql::Stmt up(I.db,
                     "UPDATE devices SET secret_token = ?1, key_id = ?2, code_token = ?3, "
                     "code_key_id = ?4 WHERE id = ?5");
        for (const auto& r : rows) {
            std::string secret_token;
            std::string code_token;
            if (!r.secret_token.empty()) {
                secret_token = next.current().encrypt(I.decrypt(r, &next).view(), now);
            }
            if (!r.code_token.empty()) {
                code_token = next.current().encrypt(
                    I.open_token(r.code_token, r.code_key_id,
                                 "the pairing code of device " + id_hex(r.id), &next)
                        .view(),
                    now);
            }
            up.reset();
            up.bind(1, secret_token)
                .bind(2, next.current_id())
                .bind(3, code_token)
                .bind(4, code_token.empty() ? 0U : next.current_id())
                .bind(5, r.id)
                .run();
        }
        if (const auto pi_key = I.get_setting("pi_key_private")) {
            std::uint32_t key_id = 0;
            try {
                key_id = static_cast<std::uint32_t>(
                    std::stoul(I.get_setting("pi_key_key_id").value_or("")));
            } catch (const std::exception&) {
                throw StoreError("setting pi_key_key_id is not a number");
            }
            const auto scalar = I.open_token(*pi_key, key_id, "the Pi's private key", &next);
            I.put_setting("pi_key_private", next.current().encrypt(scalar.view(), now));
            I.put_setting("pi_key_key_id", std::to_string(next.current_id()));
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
