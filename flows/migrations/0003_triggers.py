"""Trigger state: per flow trigger, its next and last evaluation, worker, last result and lock; scheduler tick liveness (docs/triggers.md)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('flows', '0002_default_tenant'),
    ]

    operations = [
        migrations.CreateModel(
            name='SchedulerTick',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('last_tick', models.DateTimeField()),
            ],
        ),
        migrations.AlterField(
            model_name='logline',
            name='execution',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='logs', to='flows.execution'),
        ),
        migrations.CreateModel(
            name='TriggerState',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('trigger_id', models.CharField(max_length=255)),
                ('trigger_type', models.CharField(max_length=255)),
                ('definition', models.JSONField(default=dict)),
                ('fingerprint', models.CharField(max_length=64)),
                ('next_date', models.DateTimeField(blank=True, null=True)),
                ('last_date', models.DateTimeField(blank=True, null=True)),
                ('evaluated', models.DateTimeField(blank=True, null=True)),
                ('worker_id', models.CharField(blank=True, default='', max_length=255)),
                ('last_result', models.TextField(blank=True, default='')),
                ('last_error', models.TextField(blank=True, default='')),
                ('last_execution', models.UUIDField(blank=True, null=True)),
                ('disabled', models.BooleanField(default=False)),
                ('evaluation', models.UUIDField(blank=True, null=True)),
                ('published', models.DateTimeField(blank=True, null=True)),
                ('lock_owner', models.CharField(blank=True, default='', max_length=255)),
                ('locked', models.DateTimeField(blank=True, null=True)),
                ('memory', models.JSONField(blank=True, default=dict)),
                ('created', models.DateTimeField(auto_now_add=True)),
                ('updated', models.DateTimeField(auto_now=True)),
                ('flow', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='trigger_states', to='flows.flow')),
            ],
            options={
                'ordering': ['flow__tenant__key', 'flow__namespace', 'flow__flow_id', 'trigger_id'],
            },
        ),
        migrations.AddField(
            model_name='logline',
            name='trigger_state',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='logs', to='flows.triggerstate'),
        ),
        migrations.AddConstraint(
            model_name='logline',
            constraint=models.CheckConstraint(condition=models.Q(('execution__isnull', False), ('trigger_state__isnull', False), _connector='OR'), name='logline_of_execution_or_trigger'),
        ),
        migrations.AddIndex(
            model_name='triggerstate',
            index=models.Index(fields=['next_date'], name='trigger_state_due'),
        ),
        migrations.AddIndex(
            model_name='triggerstate',
            index=models.Index(fields=['trigger_type'], name='trigger_state_type'),
        ),
        migrations.AddConstraint(
            model_name='triggerstate',
            constraint=models.UniqueConstraint(fields=('flow', 'trigger_id'), name='trigger_state_unique_per_flow'),
        ),
    ]
