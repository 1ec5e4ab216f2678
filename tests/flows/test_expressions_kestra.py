"""Kestra's Pebble forms, functions and filters on the Jinja sandbox (docs/expressions.md)."""
import base64
import datetime as dt
import time

import pytest

from flows import masking
from flows.expressions import ExpressionError, check_syntax, render

CONTEXT = {
    "nothing": None, "flag": True, "m": {"x": 1, "y": 2}, "items": [1, 2, 3], "text": "hello",
    "inputs": {"name": "ada", "when": "2024-03-05T10:20:30Z"},
    "outputs": {"t": {"value": "v"}, "child": {"a": {"value": "A"}, "b": {"value": "B"}}},
}


def r(template: str, **extra) -> str:
    return render(template, {**CONTEXT, **extra})


@pytest.mark.parametrize("template, expected", [
    # ?? and ???: undefined (a missing attribute anywhere) or null gives the right side; chains
    ("{{ nothing ?? 'a' }}", "a"),
    ("{{ outputs.missing.value ?? 'b' }}", "b"),
    ("{{ outputs['missing'].value ?? 'b' }}", "b"),
    ("{{ undefined_name ?? 'c' }}", "c"),
    ("{{ outputs.nope.value ?? nothing ?? 'third' }}", "third"),
    ("{{ outputs.t.value ?? 'unused' }}", "v"),
    ("{{ nothing ??? 'u' }}", ""),
    ("{{ missing ??? 'u' }}", "u"),
    ("{{ 0 ?? 1 }}|{{ '' ?? 1 }}|{{ false ?? 1 }}", "0||false"),
    # ?? binds tighter than ~ and math, a filter after it applies to the whole (Kestra's precedence)
    ("{{ 'x' ~ nothing ?? 'y' ~ 'z' }}", "xyz"),
    ("{{ nothing ?? 2 * 3 }}", "6"),
    ("{{ nothing ?? 'low' | upper }}", "LOW"),
    # ternary: lowest precedence, nests to the right
    ("{{ flag ? 'yes' : 'no' }}", "yes"),
    ("{{ 1 > 2 ? 'a' : 2 > 1 ? 'b' : 'c' }}", "b"),
    ("{{ inputs.name == 'ada' ? 'hi ' ~ inputs.name : 'who?' }}", "hi ada"),
    ("{{ {'k': flag ? 1 : 2}.k }}", "1"),
    # equals, not, null
    ("{{ inputs.name equals 'ada' }} {{ not (1 equals 2) }} {{ nothing == null }}", "true true true"),
    # contains: substring, list item, map key, all of a list
    ("{{ text contains 'ell' }} {{ items contains 2 }} {{ m contains 'x' }} {{ items contains [1, 3] }} "
     "{{ items contains 9 }} {{ nothing contains 1 }}", "true true true true false false"),
    # tests
    ("{{ outputs.nope.value is defined }} {{ outputs.t.value is defined }} {{ outputs.nope is not defined }}",
     "false true true"),
    ("{{ nothing is null }} {{ m is not null }} {{ '' is empty }} {{ '  ' is empty }} {{ [] is empty }} "
     "{{ m is empty }} {{ outputs.nope.x is empty }}", "true true true true true false true"),
    ("{{ '{\"a\": 1}' is json }} {{ 'nope' is json }} {{ m is json }}", "true false false"),
    # ~ and blocks
    ("{{ 'a' ~ 1 ~ flag }}", "a1True"),
    ("{% for k, v in m %}{{ k }}={{ v }};{% endfor %}", "x=1;y=2;"),
    ("{% for entry in m %}{{ entry.key }}={{ entry.value }},{{ entry }},{{ m[entry] }};{% endfor %}", "x=1,x,1;y=2,y,2;"),
    ("{% for i in items %}{{ loop.index0 }}{% if not loop.last %},{% endif %}{% endfor %}", "0,1,2"),
    ("{% for i in [] %}x{% else %}empty{% endfor %}", "empty"),
    ("{% if nothing is null %}N{% elseif true %}E{% else %}X{% endif %}", "N"),
    ("{% if false %}N{% elseif m.x equals 1 %}E{% else %}X{% endif %}", "E"),
    # the forms are tokens: inside strings they stay text
    ("{{ 'a ?? b ? c : d equals e contains f null' }}", "a ?? b ? c : d equals e contains f null"),
    ("{{ '{{ x }}' }}", "{{ x }}"),
    ("{{ m.equals ?? 'attribute, not operator' }}", "attribute, not operator"),
    # an exact quotient of integers stays an integer, as Pebble prints it
    ("{{ 10 / 2 }} {{ 7 / 2 }} {{ 1.0 / 2 }} {{ items | length / 3 }}", "5 3.5 0.5 1"),
    # booleans and null print as in Kestra
    ("{{ flag }} {{ 1 == 2 }} [{{ nothing }}]", "true false []"),
])
def test_pebble_forms(template, expected):
    assert r(template) == expected


@pytest.mark.parametrize("template, expected", [
    ("{{ outputs.nope.value | default('d') }} {{ '' | default('e') }} {{ nothing | default('n') }} "
     "{{ 'set' | default('x') }}", "d e n set"),
    ("{{ m | keys }} {{ m | values }} {{ items | first }} {{ items | last }} {{ items | length }} "
     "{{ nothing | length }} {{ 'abc' | length }}", "['x', 'y'] [1, 2] 1 3 3 0 3"),
    ("{{ items | join('-') }} {{ 'a,b,,' | split(',') }} {{ 'a,b,c' | split(',', 2) }}",
     "1-2-3 ['a', 'b'] ['a', 'b,c']"),
    ("{{ 'hello world' | replace({'world': 'you', 'hello': 'bye'}) }} {{ 'a-b' | replace('-', '+') }}",
     "bye you a+b"),
    ("{{ ' x ' | trim }} {{ 'a' | upper }} {{ 'B' | lower }} {{ -3 | abs }}", "x A b 3"),
    ("{{ '42' | number + 1 }} {{ '3.5' | number }} {{ '7' | number('FLOAT') }}", "43 3.5 7.0"),
    ("{{ 'Héllo, Wörld!' | slugify }}", "hello-world"),
    ("{{ 'hi there' | base64encode }} {{ 'aGkgdGhlcmU=' | base64decode }}", "aGkgdGhlcmU= hi there"),
    ("{{ 'a b&c/d' | urlencode }} {{ 'a+b%26c' | urldecode }}", "a+b%26c%2Fd a b&c"),
    ("{{ m | toJson }} {{ m | json }} {{ fromJson('{\"k\": [1]}').k[0] }} {{ json('[5]')[0] }}",
     '{"x": 1, "y": 2} {"x": 1, "y": 2} 1 5'),
    ("{{ m | yaml }}", "x: 1\ny: 2\n"),
    ("{{ yaml('a: {b: 2}').a.b }}", "2"),
    ("{{ 'a.b.c' | substringBefore('.') }} {{ 'a.b.c' | substringAfter('.') }} {{ 'a.b.c' | substringBeforeLast('.') }} "
     "{{ 'a.b.c' | substringAfterLast('.') }} {{ 'abc' | substringAfter('x') }}|", "a b.c a.b c |"),
    ("{{ 'kestra' | startsWith('kes') }} {{ 'kestra' | endsWith('x') }}", "true false"),
    ("{{ [1, [2, 3], [4]] | flatten }} {{ [1, 2, 3, 4, 5] | chunk(2) }}", "[1, 2, 3, 4] [[1, 2], [3, 4], [5]]"),
    ("{{ 'abc' | md5 }} {{ 'abc' | sha1 }}", "900150983cd24fb0d6963f7d28e17f72 a9993e364706816aba3e25717850c26c9cd0d89d"),
    ("{{ '2024-03-05T10:20:30Z' | timestamp }}", "1709634030"),
    ("{{ uuid() | length }} {{ randomInt(5, 6) }}", "36 5"),
    ("{{ m | merge({'y': 3, 'z': 4}) }} {{ [1] | merge([2]) }}", "{'x': 1, 'y': 3, 'z': 4} [1, 2]"),
    ("{{ max(1, 5, 3) }} {{ min(4, 2) }} {{ items | max }}", "5 2 3"),
])
def test_filters_and_functions(template, expected):
    assert r(template) == expected


@pytest.mark.parametrize("template, expected", [
    ("{{ inputs.when | date('yyyy-MM-dd HH:mm:ss') }}", "2024-03-05 10:20:30"),
    ("{{ inputs.when | date('EEEE d MMMM yy, h:mm a XXX', timeZone='Europe/Paris') }}",
     "Tuesday 5 March 24, 11:20 AM +01:00"),
    ("{{ inputs.when | date('HH:mm', timezone='America/New_York') }}", "05:20"),
    ("{{ inputs.when | date }}", "2024-03-05T10:20:30.000000Z"),
    ("{{ inputs.when | date('iso_local_date') }} {{ inputs.when | date('sql_seq') }}", "2024-03-05 2024-03-05 10:20:30"),
    ("{{ inputs.when | date(\"yyyy-MM-dd'T'HH 'o''clock'\") }}", "2024-03-05T10 o'clock"),
    ("{{ '05/03/2024 08:00' | date('yyyy-MM-dd HH:mm', existingFormat='dd/MM/yyyy HH:mm') }}", "2024-03-05 08:00"),
    ("{{ '2024-01-31T00:00:00Z' | dateAdd(1, 'MONTHS', format='yyyy-MM-dd') }}", "2024-02-29"),
    ("{{ inputs.when | dateAdd(-2, 'HOURS', format='HH:mm') }} {{ inputs.when | dateAdd(1, 'WEEKS', format='dd') }}",
     "08:20 12"),
    ("{{ 0 | date('yyyy') }}", "1970"),
    ("{{ nothing | date('yyyy') }}|", "|"),
])
def test_dates(template, expected):
    assert r(template) == expected


def test_now_is_the_current_time():
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    rendered = dt.datetime.fromisoformat(r("{{ now() }}"))
    assert before <= rendered <= dt.datetime.now(dt.timezone.utc)
    assert r("{{ now(format='yyyy') }}") == str(dt.datetime.now(dt.timezone.utc).year)


def test_jq_sees_none_of_the_process_environment(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "django-key")
    for program in ("$ENV | keys", "env | keys"):
        assert set(render("{{ m | jq(program) | first | join(',') }}", {"m": {}, "program": program}).split(",")) <= {
            "LANG", "LC_CTYPE", ""}


def test_jq_runs_a_real_jq_and_returns_every_result():
    assert r("{{ m | jq('.x') }}") == "[1]"
    assert r("{{ m | jq('.x') | first }}") == "1"
    assert r("{{ '{\"a\": [1, 2]}' | jq('.a[] * 10') }}") == "[10, 20]"
    assert r("{{ outputs | jq('[.child[].value] | join(\",\")') | first }}") == "A,B"


@pytest.mark.parametrize("template, message", [
    ("{{ m | jq('[range(1e10)] | length') }}", "ran longer than the render's budget"),
    ("{{ m | jq('def f: f; f') }}", "ran longer than the render's budget"),
    ("{{ m | jq('[limit(100000000; repeat(\"xxxxxxxxxx\"))]') }}", "jq"),
    ("{{ m | jq('.[') }}", "syntax error"),
    ("{{ m | jq('import \"data\" as $d; $d') }}", "jq modules (import, include, module) are not available"),
    ("{{ m | jq('# a comment\n include \"lib\"; .') }}", "jq modules"),
    ("{{ 'not json' | jq('.') }}", "invalid JSON"),
])
def test_hostile_or_broken_jq_programs_fail_within_the_budget(template, message):
    started = time.monotonic()
    with pytest.raises(ExpressionError) as error:
        r(template)
    assert time.monotonic() - started < 10
    assert message in str(error.value) and template[:20] in str(error.value)
    assert r("{{ m | jq('.y') | first }}") == "2"  # the helper comes back


@pytest.mark.parametrize("template, message", [
    ("{{ inputs.when | date('q') }}", "the date pattern letter 'q' is not supported"),
    ("{{ inputs.when | date('y' * 100000) }}", "longer than 200 characters"),
    ("{{ 'yesterday' | date('yyyy') }}", "'yesterday' is not an ISO-8601 date"),
    ("{{ inputs.when | date('yyyy', timeZone='Mars/Olympus') }}", "unknown time zone 'Mars/Olympus'"),
    ("{{ inputs.when | dateAdd(1, 'FORTNIGHTS') }}", "dateAdd's unit is one of"),
    ("{{ inputs.when | dateAdd(10 ** 12, 'YEARS') }}", "goes past the dates"),
    ("{{ 'x' | number }}", "'x' is not a number"),
    ("{{ 5 | number }}", "number can only be applied to a string"),
    ("{{ '%%%' | base64decode }}", "is not base64-encoded text"),
    ("{{ 'a' | replace({'a': 'b'}, regexp=true) }}", "regexp=true is not available"),
    ("{{ ('a' * 1000000) | replace({'a': 'bb'}) }}", "replace() would have more than"),
    ("{{ 'a: [' | yaml }}", ""),
    ("{{ yaml('a: [') }}", "invalid YAML"),
    ("{{ fromJson('{') }}", "invalid JSON"),
    ("{{ 5 contains 1 }}", "contains needs a string, a list or a map"),
    ("{{ 'x' | keys }}", "keys needs a map"),
    ("{{ max(1, 'a') }}", "max() cannot compare int, str"),
    ("{{ m | merge([1]) }}", "merge takes two maps or two lists"),
    ("{{ render('{{ nope }}') }}", "'nope' is undefined"),
    ("{{ currentEachOutput(outputs.child) }}", "currentEachOutput is only known while a task runs"),
])
def test_bad_inputs_are_clear_errors_naming_the_expression(template, message):
    if template == "{{ 'a: [' | yaml }}":  # the yaml filter writes YAML: any text is fine
        assert r(template) == "'a: ['\n"
        return
    with pytest.raises(ExpressionError) as error:
        r(template)
    assert message in str(error.value), str(error.value)
    assert template[:25] in str(error.value)


def test_render_renders_a_value_that_holds_an_expression():
    context = {"vars": {"greeting": "hello {{ inputs.name }}", "nested": "{{ vars.greeting }}!"},
               "inputs": {"name": "ada"}}
    assert render("{{ vars.greeting }}", context) == "hello {{ inputs.name }}"
    assert render("{{ render(vars.greeting) }}", context) == "hello ada"
    assert render("{{ render(vars.nested) }}", context) == "hello ada!"
    assert render("{{ renderOnce(vars.nested) }}", context) == "hello {{ inputs.name }}!"
    assert render("{{ render(vars.nested, recursive=false) }}", context) == "hello {{ inputs.name }}!"
    assert render("{{ render(5) }}", context) == "5"


def test_render_of_an_expression_that_renders_itself_stops():
    context = {"vars": {"loop": "{{ render(vars.loop) }}"}}
    with pytest.raises(ExpressionError):
        render("{{ render(vars.loop) }}", context)


def test_current_each_output_follows_the_enclosing_loops():
    foreach = {"id": "loop", "type": "io.kestra.plugin.core.flow.ForEach"}
    sequential = {"id": "seq", "type": "io.kestra.plugin.core.flow.Sequential"}
    outputs = {"inner": {"x": {"1": {"value": "x1"}, "2": {"value": "x2"}}, "y": {"1": {"value": "y1"}}}}
    context = {
        "outputs": outputs,
        "taskrun": {"value": "1"},
        "parents": [  # nearest first: a Sequential in an inner ForEach in an outer ForEach
            {"taskrun": {"value": "1"}, "task": sequential},
            {"taskrun": {"value": "y"}, "task": foreach},
            {"taskrun": {"value": "y"}, "task": sequential},
            {"taskrun": {"value": None}, "task": foreach},
        ],
    }
    assert render("{{ currentEachOutput(outputs.inner).value }}", context) == "y1"
    context["parents"] = [{"taskrun": {"value": None}, "task": foreach}]
    context["taskrun"] = {"value": "x"}
    assert render("{{ currentEachOutput(outputs.inner)['2'].value }}", context) == "x2"


def test_secret_envs_and_globals_come_from_the_environment(monkeypatch, settings):
    monkeypatch.setenv("SECRET_API_TOKEN", base64.b64encode(b"s3cr3t-value").decode())
    monkeypatch.setenv("SECRET_BROKEN", "not base64!")
    monkeypatch.setenv("ENV_MY_SETTING", "on")
    settings.KESTRA_GLOBALS = {"team": "data", "limits": {"rows": 10}}
    assert render("{{ secret('API_TOKEN') }} {{ secret('api_token') }}", {}) == "s3cr3t-value s3cr3t-value"
    assert render("{{ envs.my_setting }} {{ globals.team }} {{ globals.limits.rows }}", {}) == "on data 10"
    assert render("{{ envs.absent ?? 'none' }} {{ globals.absent ?? 'none' }}", {}) == "none none"
    monkeypatch.setenv("KESTRA_TEST1", "older prefix")
    settings.ENV_VARS_PREFIX = "KESTRA_"
    assert render("{{ envs.test1 }} {{ envs.my_setting ?? 'not with this prefix' }}", {}) == (
        "older prefix not with this prefix")
    with pytest.raises(ExpressionError, match="no secret named 'MISSING': set the environment variable SECRET_MISSING"):
        render("{{ secret('MISSING') }}", {})
    with pytest.raises(ExpressionError, match="SECRET_BROKEN is not base64-encoded"):
        render("{{ secret('BROKEN') }}", {})
    with pytest.raises(ExpressionError, match="no secret named 'KEY'"):
        render("{{ secret('KEY') }}", {})  # Django's SECRET_KEY is never a flow's secret
    # every configured secret is masked where SECRET inputs are (logs, errors, API outputs)
    secrets = masking.secret_values({})
    assert masking.mask_text("token=s3cr3t-value", secrets) == "token=" + masking.MASK


@pytest.mark.parametrize("template", [
    "{{ a ?? }}", "{{ a ? b }}", "{{ a ? b : }}", "{{ a contains }}", "{{ a equals }}", "{{ ?? b }}",
    "{% if a %}x{% elseif %}y{% endif %}",
])
def test_syntax_errors_in_pebble_forms_are_found_before_rendering(template):
    with pytest.raises(ExpressionError, match="syntax error"):
        check_syntax(template)


def test_the_budget_bounds_the_pebble_forms_too():
    chain = "{{ " + " ?? ".join(["missing.a"] * 20) + " ?? 'end' }}"
    assert render(chain, {}) == "end"
    with pytest.raises(ExpressionError, match="too complex to compile"):
        check_syntax("{{ " + " ?? ".join(["missing.a"] * 500) + " }}")
    with pytest.raises(ExpressionError, match="ran longer than its budget"):
        render("{% for i in range(100000) %}{% for j in range(100000) %}{{ i ?? j }}{% endfor %}{% endfor %}", {})


def test_a_flow_with_pebble_forms_uploads_and_a_bad_one_is_refused_where_it_stands():
    from flows.definition import parse_flow
    from flows.errors import UserError

    source = ("id: demo\nnamespace: company.team\ntasks:\n"
              "  - id: hello\n    type: io.kestra.plugin.core.log.Log\n"
              "    message: \"{{ inputs.name ?? 'x' }} {{ flag ? 'a' : 'b' }} {{ m is json }} {{ a equals b }}\"\n"
              "  - id: bad\n    type: io.kestra.plugin.core.log.Log\n"
              "    message: \"{{ flag ? 'a' }}\"\n")
    with pytest.raises(UserError) as caught:
        parse_flow(source)
    [fault] = caught.value.faults
    assert "template syntax error in '{{ flag ? 'a' }}'" in fault.message and fault.line == 9
    parse_flow(source.replace("{{ flag ? 'a' }}", "{{ flag ? 'a' : 'b' }}"))


@pytest.mark.parametrize("template, expected", [
    ("{{ ''.__class__ ?? 'x' }}", "x"),
    ("{{ m.__class__.__mro__ | default('d') }}", "d"),
    ("{{ m['__class__'] ?? 'z' }}", "z"),
    ("{{ cycler.__init__.__globals__ is defined }}", "false"),
])
def test_the_lenient_forms_never_open_the_sandbox(template, expected):
    assert r(template) == expected


@pytest.mark.parametrize("template", [
    "{{ (m.__init__ ?? 1).__globals__ }}",
    "{% for entry in m %}{{ entry.__class__ }}{% endfor %}",
    "{{ (m.update ?? 1)({'a': 1}) }}",
])
def test_escapes_through_the_lenient_forms_are_refused(template):
    with pytest.raises(ExpressionError):
        r(template)


def test_read_gives_the_text_of_a_namespace_file_or_an_uri_of_the_flows_namespace():
    from flows import storage

    flow = {"tenantId": "main", "namespace": "company.read", "id": "f", "revision": 1}
    uri = storage.put(tenant_key="main", path="company/read/f/executions/e/out.txt", content=b"from a task")
    storage.put(tenant_key="main", path=f"{storage.namespace_files_prefix('company.read')}/scripts/a.sql",
                content=b"select 1")
    foreign = storage.put(tenant_key="main", path="other/team/x.txt", content=b"not yours")
    try:
        assert render("{{ read(uri) }} | {{ read('scripts/a.sql') }}", {"flow": flow, "uri": uri}) == (
            "from a task | select 1")
        with pytest.raises(ExpressionError, match="outside namespace 'company.read'"):
            render("{{ read(uri) }}", {"flow": flow, "uri": foreign})
        with pytest.raises(ExpressionError, match="no file at"):
            render("{{ read('scripts/none.sql') }}", {"flow": flow})
        with pytest.raises(ExpressionError, match="path"):
            render("{{ read('../../other/team/x.txt') }}", {"flow": flow})
        with pytest.raises(ExpressionError, match="only known while a flow runs"):
            render("{{ read('scripts/a.sql') }}", {})
        big = storage.put(tenant_key="main", path="company/read/big.txt", content=b"x" * 1_000_001)
        with pytest.raises(ExpressionError, match="the file is larger than 1000000 bytes"):
            render("{{ read(uri) }}", {"flow": flow, "uri": big})
    finally:
        storage.delete_tree(tenant_key="main", path="company/read")
        storage.delete_tree(tenant_key="main", path="other/team")
