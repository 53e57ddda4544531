/* SPDX-License-Identifier: GPL-2.0-or-later */
/* org.cpmsync.Manager1 on /org/cpmsync. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cpmsync/error.h>

#include "dbus-util.h"
#include "manager.h"
#include "service-private.h"

static const struct {
	const char *key;
	const char *type;
} setting_keys[] = {
	{ "Host", "s" },
	{ "Port", "q" },
	{ "Security", "s" },
	{ "User", "s" },
	{ "Password", "s" },
	{ "CaCertificate", "ay" },
	{ "ClientCertificate", "ay" },
	{ "Folders", "as" },
	{ "SyncBodies", "s" },
	{ "CpmRoot", "s" },
};

/*
 * Keys of contract version 1 that name a file or a command: refused, since
 * a caller allowed to talk to org.cpmsync must not make the daemon read
 * (and send to a server of its choosing) a file of the caller's choosing.
 */
static const char *const refused_keys[] = { "PasswordFile", "PasswordCommand", "CaFile" };

/* Bytes of a CaCertificate or ClientCertificate. */
#define CPM_MAX_PEM (1024u * 1024u)

/*
 * NULL if the len bytes at pem (key's value) look like what key holds,
 * else why not (malloc()ed).  Only the shape is checked here; the TLS
 * layer parses the certificates when it uses them.
 */
static char *check_pem(const char *key, const char *pem, size_t len, bool with_key)
{
	static const char cert[] = "-----BEGIN CERTIFICATE-----";

	if (len == 0)
		return cpm_asprintf("settings: %s is empty", key);
	if (len > CPM_MAX_PEM)
		return cpm_asprintf("settings: %s is longer than %u bytes", key, CPM_MAX_PEM);
	if (memchr(pem, '\0', len))
		return cpm_asprintf("settings: %s must be PEM text (it contains a NUL byte)", key);
	if (!memmem(pem, len, cert, sizeof(cert) - 1))
		return cpm_asprintf("settings: %s must be PEM: no %s block", key, cert);
	if (with_key &&
	    !(memmem(pem, len, "-----BEGIN ", 11) && memmem(pem, len, "PRIVATE KEY-----", 16)))
		return cpm_asprintf("settings: %s must hold the certificate and its private key "
				    "(PEM): no PRIVATE KEY block",
				    key);
	return NULL;
}

void cpm_account_settings_clear(struct cpmsync_account_settings *s)
{
	free((void *)s->folders);
	memset(s, 0, sizeof(*s));
}

/* What cpmsync_account_settings_check() found, in AddAccount's words. */
static const char *const settings_error_text[] = {
	[CPMSYNC_SETTINGS_NO_HOST] = "settings: Host is required",
	[CPMSYNC_SETTINGS_BAD_HOST] = "settings: Host is not a host name",
	[CPMSYNC_SETTINGS_NO_USER] = "settings: User is required",
	[CPMSYNC_SETTINGS_BAD_USER] = "settings: User must be one line",
	[CPMSYNC_SETTINGS_BAD_SECURITY] =
		"settings: Security must be \"tls\", \"starttls\" or \"none\"",
	[CPMSYNC_SETTINGS_NO_PASSWORD] = "settings: Password is required",
	[CPMSYNC_SETTINGS_TWO_PASSWORDS] = "settings: Password is required",
	[CPMSYNC_SETTINGS_BAD_PASSWORD] = "settings: Password must be one line and not empty",
	[CPMSYNC_SETTINGS_EMPTY_PATH] = "settings: file names must not be empty",
	[CPMSYNC_SETTINGS_BAD_SYNC_BODIES] =
		"settings: SyncBodies must be \"all\", \"none\" or a size in KiB",
	[CPMSYNC_SETTINGS_BAD_CPM_ROOT] = "settings: CpmRoot must be a folder name (\"\": the "
					  "top level)",
};

char *cpm_parse_account_settings(DBusMessageIter *iter, struct cpmsync_account_settings *ret,
				 struct cpm_account_pems *ret_pems)
{
	struct cpmsync_account_settings s = { 0 };
	struct cpm_account_pems pems = { 0 };
	enum cpmsync_settings_error check;
	DBusMessageIter a, e, v;
	unsigned seen = 0;
	char *err = NULL;

	if (dbus_message_iter_get_arg_type(iter) != DBUS_TYPE_ARRAY ||
	    dbus_message_iter_get_element_type(iter) != DBUS_TYPE_DICT_ENTRY)
		return cpm_strdup("settings: must be of type a{sv}");
	dbus_message_iter_recurse(iter, &a);
	for (; dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&a)) {
		const char *key, *str = NULL;
		char *sig;
		unsigned k;
		bool ok;

		dbus_message_iter_recurse(&a, &e);
		if (dbus_message_iter_get_arg_type(&e) != DBUS_TYPE_STRING) {
			err = cpm_strdup("settings: keys must be strings");
			goto fail;
		}
		dbus_message_iter_get_basic(&e, &key);
		dbus_message_iter_next(&e);
		if (dbus_message_iter_get_arg_type(&e) != DBUS_TYPE_VARIANT) {
			err = cpm_strdup("settings: values must be variants");
			goto fail;
		}
		for (k = 0; k < sizeof(refused_keys) / sizeof(refused_keys[0]); k++)
			if (!strcmp(refused_keys[k], key)) {
				err = cpm_asprintf(
					"settings: %s is not accepted: paths and commands "
					"belong in the configuration file only (give "
					"Password%s)",
					key, strcmp(key, "CaFile") ? "" : " and CaCertificate");
				goto fail;
			}
		for (k = 0; k < sizeof(setting_keys) / sizeof(setting_keys[0]); k++)
			if (!strcmp(setting_keys[k].key, key))
				break;
		if (k == sizeof(setting_keys) / sizeof(setting_keys[0])) {
			err = cpm_asprintf("settings: unknown key '%.64s'", key);
			goto fail;
		}
		if (seen & (1u << k)) {
			err = cpm_asprintf("settings: %s given twice", key);
			goto fail;
		}
		seen |= 1u << k;
		dbus_message_iter_recurse(&e, &v);
		sig = dbus_message_iter_get_signature(&v);
		if (!sig)
			cpm_oom();
		ok = !strcmp(sig, setting_keys[k].type);
		dbus_free(sig);
		if (!ok) {
			err = cpm_asprintf("settings: %s must be of type %s", key,
					   setting_keys[k].type);
			goto fail;
		}
		if (!strcmp(key, "Port")) {
			dbus_uint16_t port;

			dbus_message_iter_get_basic(&v, &port);
			s.port = port;
			continue;
		}
		if (!strcmp(key, "Folders")) {
			const char **folders;

			err = cpm_read_strv(&v, "settings: Folders", CPM_MAX_FLAGS, false,
					    &folders);
			if (err)
				goto fail;
			s.folders = folders;
			continue;
		}
		if (!strcmp(key, "CaCertificate") || !strcmp(key, "ClientCertificate")) {
			bool client = key[0] == 'C' && key[1] == 'l';
			DBusMessageIter bytes;
			const char *pem;
			int len;

			dbus_message_iter_recurse(&v, &bytes);
			dbus_message_iter_get_fixed_array(&bytes, &pem, &len);
			err = check_pem(key, pem, (size_t)len, client);
			if (err)
				goto fail;
			if (client) {
				pems.client = pem;
				pems.client_len = (size_t)len;
			} else {
				pems.ca = pem;
				pems.ca_len = (size_t)len;
			}
			continue;
		}
		dbus_message_iter_get_basic(&v, &str);
		if (strlen(str) > CPMSYNC_SETTING_MAX) {
			err = cpm_asprintf("settings: %s longer than %u bytes", key,
					   CPMSYNC_SETTING_MAX);
			goto fail;
		}
		if (!strcmp(key, "Host"))
			s.host = str;
		else if (!strcmp(key, "Security"))
			s.security = str;
		else if (!strcmp(key, "User"))
			s.user = str;
		else if (!strcmp(key, "Password"))
			s.password = str;
		else if (!strcmp(key, "SyncBodies"))
			s.sync_bodies = str;
		else if (!strcmp(key, "CpmRoot"))
			s.cpm_root = str;
	}
	if (!s.security)
		s.security = "tls";
	check = cpmsync_account_settings_check(&s, NULL);
	if (check != CPMSYNC_SETTINGS_OK) {
		err = cpm_strdup(settings_error_text[check]);
		goto fail;
	}
	*ret = s;
	if (ret_pems)
		*ret_pems = pems;
	return NULL;
fail:
	cpm_account_settings_clear(&s);
	return err;
}

static DBusMessage *hook_error(DBusMessage *msg, int r, char *reason)
{
	DBusMessage *reply;
	const char *name;

	if (r == -EINVAL)
		name = CPM_ERROR_INVALID_ARGS;
	else if (r == -CPMSYNC_E_NOT_FOUND || r == -ENOENT)
		name = CPM_ERROR_NOT_FOUND;
	else
		name = CPM_ERROR_FAILED;
	reply = cpm_error(msg, name, "%s", reason && *reason ? reason : cpmsync_strerror(r));
	free(reason);
	return reply;
}

static DBusMessage *add_account_call(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct cpm_service *svc = userdata;
	struct cpmsync_account_settings s;
	struct cpm_account_pems pems;
	struct svc_account *a;
	DBusMessageIter it;
	DBusMessage *reply;
	const char *name;
	char *err = NULL;
	int r;

	(void)bus;
	dbus_message_iter_init(msg, &it);
	dbus_message_iter_get_basic(&it, &name);
	err = cpm_check_account_name("name", name);
	if (!err) {
		dbus_message_iter_next(&it);
		err = cpm_parse_account_settings(&it, &s, &pems);
	}
	if (err) {
		reply = cpm_error_invalid_args(msg, "%s", err);
		free(err);
		return reply;
	}
	if (svc_account_by_name(svc, name)) {
		cpm_account_settings_clear(&s);
		return cpm_error(msg, CPM_ERROR_FAILED, "account '%s' exists", name);
	}
	if (!svc->hooks.add_account) {
		cpm_account_settings_clear(&s);
		return cpm_error(msg, CPM_ERROR_FAILED, "adding accounts is not possible here");
	}
	r = svc->hooks.add_account(svc->userdata, name, &s, &pems, &err);
	cpm_account_settings_clear(&s);
	if (r < 0)
		return hook_error(msg, r, err);
	free(err);
	a = svc_account_by_name(svc, name);
	if (!a) {
		/* The hook did not export it (yet): the path it will have. */
		char *elem = cpm_path_escape(name), *path;

		path = cpm_asprintf("%s/%s", CPM_ROOT_PATH, elem);
		free(elem);
		reply = cpm_reply(msg);
		if (!dbus_message_append_args(reply, DBUS_TYPE_OBJECT_PATH, &path,
					      DBUS_TYPE_INVALID))
			cpm_oom();
		free(path);
		return reply;
	}
	reply = cpm_reply(msg);
	if (!dbus_message_append_args(reply, DBUS_TYPE_OBJECT_PATH, &a->path, DBUS_TYPE_INVALID))
		cpm_oom();
	return reply;
}

/* The account name of an Account1 path: the exported account with that
 * path, else the unescaped element. */
static char *account_name_of_path(struct cpm_service *svc, const char *path)
{
	struct svc_account *a = svc_account_by_path(svc, path);
	size_t n = strlen(CPM_ROOT_PATH);

	if (a)
		return cpm_strdup(a->name);
	if (strncmp(path, CPM_ROOT_PATH, n) || path[n] != '/' || strchr(path + n + 1, '/'))
		return NULL;
	return cpm_path_unescape(path + n + 1);
}

/*
 * UnsentChangesSaved(o account, s directory, u messages, u changes), our
 * addition to the contract: RemoveAccount saved the account's unsent
 * changes there before it dropped them (agent/removed.h), emitted before
 * its reply.
 */
static DBusMessage *remove_account_call(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	struct cpm_service *svc = userdata;
	struct cpm_account_saved saved = { 0 };
	const char *path;
	char *name, *err = NULL;
	int r;

	dbus_message_get_args(msg, NULL, DBUS_TYPE_OBJECT_PATH, &path, DBUS_TYPE_INVALID);
	name = account_name_of_path(svc, path);
	if (!name || cpm_check_account_name("account", name)) {
		free(name);
		return cpm_error(msg, CPM_ERROR_NOT_FOUND, "account: no account at '%s'", path);
	}
	if (!svc->hooks.remove_account) {
		free(name);
		return cpm_error(msg, CPM_ERROR_FAILED, "removing accounts is not possible here");
	}
	r = svc->hooks.remove_account(svc->userdata, name, &saved, &err);
	if (r < 0) {
		free(name);
		free(saved.directory);
		return hook_error(msg, r, err);
	}
	free(err);
	/* The daemon normally did this from the hook; make sure. */
	cpm_service_remove_account(svc, name);
	free(name);
	/* Before the reply: a caller that listens has it when the call returns. */
	if (saved.directory) {
		DBusMessage *sig =
			cpm_bus_new_signal(CPM_ROOT_PATH, CPM_IFACE_MANAGER, "UnsentChangesSaved");

		if (!dbus_message_append_args(sig, DBUS_TYPE_OBJECT_PATH, &path, DBUS_TYPE_STRING,
					      &saved.directory, DBUS_TYPE_UINT32, &saved.messages,
					      DBUS_TYPE_UINT32, &saved.changes, DBUS_TYPE_INVALID))
			cpm_oom();
		cpm_bus_send(bus, sig);
		free(saved.directory);
	}
	return cpm_reply(msg);
}

static void get_version(DBusMessageIter *iter, void *userdata)
{
	struct cpm_service *svc = userdata;

	cpm_append_string(iter, svc->version);
}

static void get_config_error(DBusMessageIter *iter, void *userdata)
{
	struct cpm_service *svc = userdata;

	cpm_append_string(iter, svc->config_error ? svc->config_error : "");
}

static void get_config_warnings(DBusMessageIter *iter, void *userdata)
{
	struct cpm_service *svc = userdata;
	DBusMessageIter a;

	if (!dbus_message_iter_open_container(iter, DBUS_TYPE_ARRAY, "s", &a))
		cpm_oom();
	for (size_t i = 0; i < svc->n_config_warnings; i++)
		cpm_append_string(&a, svc->config_warnings[i]);
	if (!dbus_message_iter_close_container(iter, &a))
		cpm_oom();
}

static void get_config_file(DBusMessageIter *iter, void *userdata)
{
	struct cpm_service *svc = userdata;

	cpm_append_string(iter, svc->config_file ? svc->config_file : "");
}

static void get_database(DBusMessageIter *iter, void *userdata)
{
	struct cpm_service *svc = userdata;

	cpm_append_string(iter, svc->database ? svc->database : "");
}

void cpm_service_set_files(struct cpm_service *svc, const char *config_file, const char *database)
{
	if (!svc)
		return;
	free(svc->config_file);
	free(svc->database);
	svc->config_file = config_file ? cpm_strdup(config_file) : NULL;
	svc->database = database ? cpm_strdup(database) : NULL;
}

void cpm_service_set_config_error(struct cpm_service *svc, const char *error)
{
	static const char *const changed[] = { "ConfigError", NULL };
	const char *now;

	if (!svc)
		return;
	now = svc->config_error ? svc->config_error : "";
	if (!error)
		error = "";
	if (!strcmp(now, error))
		return;
	free(svc->config_error);
	svc->config_error = *error ? cpm_strdup(error) : NULL;
	cpm_bus_properties_changed(svc->bus, CPM_ROOT_PATH, changed);
}

static bool same_strings(char *const *a, size_t na, char *const *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]))
			return false;
	return true;
}

void cpm_service_set_config_warnings(struct cpm_service *svc, char *const *warnings, size_t n)
{
	static const char *const changed[] = { "ConfigWarnings", NULL };

	if (!svc || same_strings(svc->config_warnings, svc->n_config_warnings, warnings, n))
		return;
	for (size_t i = 0; i < svc->n_config_warnings; i++)
		free(svc->config_warnings[i]);
	free(svc->config_warnings);
	svc->config_warnings = n ? cpm_calloc(n, sizeof(*svc->config_warnings)) : NULL;
	for (size_t i = 0; i < n; i++)
		svc->config_warnings[i] = cpm_strdup(warnings[i]);
	svc->n_config_warnings = n;
	cpm_bus_properties_changed(svc->bus, CPM_ROOT_PATH, changed);
}

/* AddAccount, its failure reported under the name it was given (when
 * that is an account name at all). */
static DBusMessage *add_account(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	const char *name = NULL;
	char *bad = NULL;
	DBusMessage *reply;

	dbus_message_get_args(msg, NULL, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID);
	bad = cpm_check_account_name("name", name);
	reply = svc_call_reported(userdata, bad ? NULL : name, "AddAccount", add_account_call, bus,
				  msg, userdata);
	free(bad);
	return reply;
}

/* RemoveAccount, its failure reported under the account's name (when the
 * path names one). */
static DBusMessage *remove_account(struct cpm_bus *bus, DBusMessage *msg, void *userdata)
{
	const char *path = NULL;
	char *name = NULL, *bad = NULL;
	DBusMessage *reply;

	dbus_message_get_args(msg, NULL, DBUS_TYPE_OBJECT_PATH, &path, DBUS_TYPE_INVALID);
	if (path)
		name = account_name_of_path(userdata, path);
	if (name)
		bad = cpm_check_account_name("account", name);
	reply = svc_call_reported(userdata, name && !bad ? name : NULL, "RemoveAccount",
				  remove_account_call, bus, msg, userdata);
	free(bad);
	free(name);
	return reply;
}

/* A table that reads as the interface: kept as written. */
/* clang-format off */
const struct cpm_interface cpm_manager_interface = {
	.name = CPM_IFACE_MANAGER,
	.methods = (const struct cpm_method[]){
		{ "AddAccount", CPM_ARGS({ "name", "s" }, { "settings", "a{sv}" }),
		  CPM_ARGS({ "account", "o" }), add_account },
		{ "RemoveAccount", CPM_ARGS({ "account", "o" }), NULL, remove_account },
		{ NULL },
	},
	.signals = (const struct cpm_signal[]){
		/* Ours, beyond the contract: what RemoveAccount saved
		 * (remove_account_call()). */
		{ "UnsentChangesSaved", CPM_ARGS({ "account", "o" }, { "directory", "s" },
						  { "messages", "u" }, { "changes", "u" }) },
		{ NULL },
	},
	.properties = (const struct cpm_property[]){
		{ "Version", "s", get_version, NULL },
		/* Contract v2. */
		{ "ConfigError", "s", get_config_error, NULL },
		/* Ours, beyond the contract: the files in use
		 * (cpm_service_set_files()). */
		{ "ConfigFile", "s", get_config_file, NULL },
		{ "Database", "s", get_database, NULL },
		/* Ours: the warnings of the file in force
		 * (cpm_service_set_config_warnings()). */
		{ "ConfigWarnings", "as", get_config_warnings, NULL },
		{ NULL },
	},
};
/* clang-format on */
