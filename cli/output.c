/* mmtrustctl: output helpers shared by the commands. */
#include <stdio.h>

#include "cli/ctl.h"

void ctl_print_json(const json_t *j, size_t flags)
{
	json_dumpf(j, stdout, flags);
	putchar('\n');
}

int ctl_show(const struct ctl *ctl, json_t *result, void (*human)(const json_t *))
{
	if (ctl->json)
		ctl_print_json(result, JSON_INDENT(2));
	else
		human(result);
	json_decref(result);
	return EXIT_OK;
}

const char *jstr(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : "-";
}

const char *jyesno(const json_t *obj, const char *key)
{
	return json_is_true(json_object_get(obj, key)) ? "yes" : "no";
}

json_int_t jint(const json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

void print_list(const json_t *arr)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v)
		printf("%s%s", i ? "," : "", json_is_string(v) ? json_string_value(v) : "?");
}

void print_value(const json_t *v)
{
	if (json_is_array(v))
		print_list(v);
	else if (json_is_boolean(v))
		printf("%s", json_is_true(v) ? "yes" : "no");
	else if (json_is_string(v))
		printf("%s", json_string_value(v));
	else if (json_is_integer(v))
		printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (!v || json_is_null(v))
		printf("-");
	else
		json_dumpf(v, stdout, JSON_COMPACT | JSON_ENCODE_ANY);
}
